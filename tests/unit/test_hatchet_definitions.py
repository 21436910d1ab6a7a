"""The Hatchet workflows build with no engine, with the roadmap's timeouts, retries, rate limit, concurrency,
triggers and schedules; terminal errors become NonRetryableException. No Redis needed."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from hatchet_sdk import NonRetryableException

from tests.integration.hatchet.support import offline_hatchet
from zvt_pipeline.errors import InvalidMessage, VenueRetryable
from zvt_pipeline.workflows.hatchet.config import HatchetConfig
from zvt_pipeline.workflows.hatchet.place_order import guarded
from zvt_pipeline.workflows.hatchet.worker import HatchetWorkflows, build_workflows


@pytest.fixture(scope="module")
def workflows() -> HatchetWorkflows:
    return build_workflows(offline_hatchet(), HatchetConfig(orders_per_second=7, account_concurrency=3))


def test_place_order_dag_with_timeouts_retries_and_backoff(workflows: HatchetWorkflows) -> None:
    wf = workflows.place_order.workflow
    proto = wf.to_proto()
    assert proto.name == "trading.place_order" and list(proto.event_triggers) == ["order:requested"]
    tasks = {t.readable_id: t for t in proto.tasks}
    assert list(tasks) == ["validate_risk", "route_exchange", "execute_order", "update_positions"]
    assert [list(t.parents) for t in tasks.values()] == [
        [],
        ["validate_risk"],
        ["route_exchange"],
        ["execute_order"],
    ]
    assert (tasks["validate_risk"].timeout, tasks["validate_risk"].retries) == ("5s", 3)
    assert (tasks["route_exchange"].timeout, tasks["route_exchange"].retries) == ("10s", 2)
    execute = tasks["execute_order"]
    assert (execute.timeout, execute.retries, execute.backoff_factor) == ("15s", 3, 2.0)
    assert all(t.schedule_timeout == "30s" for t in tasks.values())
    (limit,) = execute.rate_limits
    assert "input.order.account_id" in limit.key_expr and limit.limit_values_expr == "7"
    concurrency = proto.concurrency
    assert concurrency.expression == "input.order.account_id" and concurrency.max_runs == 3
    assert proto.on_failure_task.readable_id.startswith("on_failure")


def test_scheduled_workflows_have_crons(workflows: HatchetWorkflows) -> None:
    crons = {wf.name: list(wf.to_proto().cron_triggers) for wf in workflows.all}
    assert crons["risk.monitor"] == ["* * * * *"]
    assert crons["trading.reconcile"] == ["*/15 * * * *"]
    assert crons["marketdata.ingest"] == ["* * * * *"]
    assert crons["trading.place_order"] == [] and crons["portfolio.rebalance"] == []
    reconcile = {t.readable_id: t for t in workflows.reconcile.workflow.to_proto().tasks}
    assert reconcile["approve_and_book"].is_durable and list(reconcile["approve_and_book"].parents) == [
        "detect"
    ]


def test_a_worker_registers_every_workflow(workflows: HatchetWorkflows) -> None:
    worker = offline_hatchet().worker("test", slots=2, workflows=workflows.all)
    names = {wf.name for wf in workflows.all}
    assert names == {
        "trading.place_order",
        "portfolio.rebalance",
        "risk.monitor",
        "trading.reconcile",
        "marketdata.ingest",
    }
    assert worker.name == "test"


def test_terminal_errors_stop_retries_and_retryable_ones_propagate() -> None:
    def terminal() -> None:
        raise InvalidMessage("amount: must be positive", field="amount")

    def retryable() -> None:
        raise VenueRetryable("rate limited")

    with pytest.raises(NonRetryableException, match="invalid_message: amount"):
        guarded(terminal)
    with pytest.raises(VenueRetryable):
        guarded(retryable)


def test_cli_group_imports_no_sdk() -> None:
    from zvt_pipeline.workflows.hatchet.cli import hatchet

    assert isinstance(hatchet, click.Group) and set(hatchet.commands) >= {"worker", "workflows"}
    code = (
        "import sys; import zvt_pipeline.workflows.hatchet.cli, zvt_pipeline.workflows.hatchet.client, "
        "zvt_pipeline.invoke; print('hatchet_sdk' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
