"""``trading.place_order`` task by task through the SDK's ``mock_run``, with the real steps on a real Redis
(paper venue): happy path, rejection, retryable and terminal errors, ambiguous submit under Hatchet
retries, Streams parity, and ``resume`` finishing a Hatchet run that died."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hatchet_sdk import NonRetryableException

from tests.integration.hatchet.support import fund, make_deps, market_order, offline_hatchet
from zvt_pipeline.errors import AmbiguousSubmit, ConfigError, VenueRetryable
from zvt_pipeline.execution.step import ExecuteStep
from zvt_pipeline.execution.venues.base import VenueOrder
from zvt_pipeline.execution.venues.paper import PaperVenue
from zvt_pipeline.messages.commands import OrderSpec, SubmitOrder
from zvt_pipeline.messages.types import TradingState
from zvt_pipeline.risk.reservations import Reservations
from zvt_pipeline.risk.snapshot import set_trading_state
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.step import order_stream
from zvt_pipeline.workflows.hatchet.deps import HatchetDeps
from zvt_pipeline.workflows.hatchet.local import as_parent_output, run_place_order_locally
from zvt_pipeline.workflows.hatchet.models import PlaceOrderInput
from zvt_pipeline.workflows.hatchet.place_order import PlaceOrderWorkflow
from zvt_pipeline.workflows.hatchet.worker import build_workflows
from zvt_pipeline.workflows.streams_runner import StepWorker, WorkerConfig
from zvt_pipeline.workflows.submit import Workflows

FULL = [
    "workflow.started",
    "order.requested",
    "order.validated",
    "order.routed",
    "order.submitted",
    "order.executed",
    "position.updated",
    "workflow.completed",
]


class ScriptedPaperVenue(PaperVenue):
    """The real paper venue, with failures the test scripts around ``create_order``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.creates = 0
        self.before: list[Exception] = []
        """Raised (one per call) before the order reaches the book: nothing happened at the venue."""
        self.after: list[Exception] = []
        """Raised (one per call) after the order was placed: the answer is lost."""

    def create_order(self, order: OrderSpec) -> VenueOrder:
        if self.before:
            raise self.before.pop(0)
        self.creates += 1
        placed = super().create_order(order)
        if self.after:
            raise self.after.pop(0)
        return placed


@pytest.fixture(scope="module")
def pw() -> PlaceOrderWorkflow:
    return build_workflows(offline_hatchet()).place_order


@pytest.fixture
def deps(redis_client: redis.Redis, keys: Keys) -> HatchetDeps:
    deps = make_deps(redis_client, keys)
    rt = deps.runtime
    venue = ScriptedPaperVenue(redis_client, keys, markets=rt.markets)
    rt.__dict__["execute_step"] = ExecuteStep(
        {"paper": venue}, release_all=Reservations(redis_client, keys).release_all, sleep=lambda _: None
    )
    fund(rt)
    return deps


def venue_of(deps: HatchetDeps) -> ScriptedPaperVenue:
    venue = deps.venues()["paper"]
    assert isinstance(venue, ScriptedPaperVenue)
    return venue


def types_of(deps: HatchetDeps, run_id: str) -> list[str]:
    rt = deps.runtime
    return [e.type for e in Workflows(rt.bus, rt.store).events(run_id)]


def status_of(deps: HatchetDeps, run_id: str) -> dict[str, Any]:
    rt = deps.runtime
    return Workflows(rt.bus, rt.store).status(run_id) or {}


def test_happy_path_appends_the_whole_order_lifecycle(pw: PlaceOrderWorkflow, deps: HatchetDeps) -> None:
    outs = run_place_order_locally(pw, deps, PlaceOrderInput(order=market_order("h1"), run_id="run-h1"))
    assert [o.step for o in outs] == ["risk", "route", "execute", "portfolio"]
    assert outs[-1].outcome == "filled" and not any(o.noop for o in outs)
    assert types_of(deps, "run-h1") == FULL
    st = status_of(deps, "run-h1")
    assert (st["status"], st["outcome"], st["invoker"], st["step"]) == (
        "completed",
        "filled",
        "hatchet",
        "portfolio",
    )
    assert st["result_filled"] == "0.01"
    assert not deps.runtime.client.zscore(deps.runtime.keys.workflows_open, "run-h1")


def test_event_triggered_run_without_run_id_derives_one(pw: PlaceOrderWorkflow, deps: HatchetDeps) -> None:
    inp = PlaceOrderInput(order=market_order("h2"))
    outs = run_place_order_locally(pw, deps, inp)
    assert outs[0].run_id == inp.workflow_run_id and outs[-1].outcome == "filled"
    # The same event delivered again: every task is a no-op on the store.
    before = deps.runtime.store.stream_version(order_stream("h2"))
    run_place_order_locally(pw, deps, inp)
    assert deps.runtime.store.stream_version(order_stream("h2")) == before
    assert venue_of(deps).creates == 1


def test_risk_rejection_completes_the_run_and_later_tasks_skip(
    pw: PlaceOrderWorkflow, deps: HatchetDeps
) -> None:
    rt = deps.runtime
    set_trading_state(rt.client, rt.keys, TradingState.HALTED, "A")
    outs = run_place_order_locally(pw, deps, PlaceOrderInput(order=market_order("r1"), run_id="run-r1"))
    assert outs[0].outcome == "rejected" and outs[0].summary["rule"]
    assert [o.noop for o in outs] == [False, True, True, True]
    assert types_of(deps, "run-r1") == [
        "workflow.started",
        "order.requested",
        "order.rejected",
        "workflow.completed",
    ]
    assert (status_of(deps, "run-r1")["status"], status_of(deps, "run-r1")["outcome"]) == (
        "completed",
        "rejected",
    )
    assert venue_of(deps).creates == 0


def test_duplicate_client_order_id_is_terminal(pw: PlaceOrderWorkflow, deps: HatchetDeps) -> None:
    run_place_order_locally(pw, deps, PlaceOrderInput(order=market_order("d1"), run_id="run-d1"))
    with pytest.raises(NonRetryableException, match="already used by run run-d1"):
        pw.validate_risk.mock_run(PlaceOrderInput(order=market_order("d1"), run_id="run-d2"), lifespan=deps)
    assert types_of(deps, "run-d1") == FULL


def _until_execute(pw: PlaceOrderWorkflow, deps: HatchetDeps, inp: PlaceOrderInput) -> dict[str, Any]:
    outs = run_place_order_locally(pw, deps, inp, stop_after="route_exchange")
    return {
        pw.validate_risk.name: as_parent_output(pw.validate_risk, outs[0]),
        pw.route_exchange.name: as_parent_output(pw.route_exchange, outs[1]),
    }


def test_retryable_venue_error_propagates_and_the_retry_succeeds(
    pw: PlaceOrderWorkflow, deps: HatchetDeps
) -> None:
    inp = PlaceOrderInput(order=market_order("v1"), run_id="run-v1")
    parents = _until_execute(pw, deps, inp)
    venue_of(deps).before.append(VenueRetryable("429 too many requests"))
    with pytest.raises(VenueRetryable):
        pw.execute_order.mock_run(inp, parent_outputs=parents, lifespan=deps)
    st = status_of(deps, "run-v1")
    assert st["status"] == "running" and "429" in st["last_error"]
    out = pw.execute_order.mock_run(inp, parent_outputs=parents, lifespan=deps, retry_count=1)
    assert out.event_types == ["order.submitted", "order.executed"] and venue_of(deps).creates == 1


def test_ambiguous_submit_under_hatchet_retry_places_one_venue_order(
    pw: PlaceOrderWorkflow, deps: HatchetDeps
) -> None:
    """Attempt 1 places the order and loses the answer (the worker dies); Hatchet retries the task; the
    execute step looks the order up by clientOrderId first and finds it: one venue order, one fill."""
    inp = PlaceOrderInput(order=market_order("a1"), run_id="run-a1")
    parents = _until_execute(pw, deps, inp)
    venue = venue_of(deps)
    venue.after.append(RuntimeError("worker lost before the venue answered"))
    with pytest.raises(RuntimeError):
        pw.execute_order.mock_run(inp, parent_outputs=parents, lifespan=deps)
    retried = pw.execute_order.mock_run(inp, parent_outputs=parents, lifespan=deps, retry_count=1)
    assert venue.creates == 1
    assert retried.event_types == ["order.submitted", "order.executed"]
    # And an AmbiguousSubmit inside one attempt resolves by lookup too, without a second order.
    inp2 = PlaceOrderInput(order=market_order("a2"), run_id="run-a2")
    parents2 = _until_execute(pw, deps, inp2)
    venue.after.append(AmbiguousSubmit("read timeout"))
    out2 = pw.execute_order.mock_run(inp2, parent_outputs=parents2, lifespan=deps)
    assert out2.event_types == ["order.submitted", "order.executed"] and venue.creates == 2
    final = pw.update_positions.mock_run(
        inp,
        parent_outputs={pw.execute_order.name: as_parent_output(pw.execute_order, retried)},
        lifespan=deps,
    )
    assert final.outcome == "filled"
    assert types_of(deps, "run-a1") == FULL


def test_terminal_error_in_a_step_records_workflow_failed(pw: PlaceOrderWorkflow, deps: HatchetDeps) -> None:
    inp = PlaceOrderInput(order=market_order("t1"), run_id="run-t1")
    parents = _until_execute(pw, deps, inp)
    venue_of(deps).before.append(ConfigError("PAPER_API_KEY: not set"))
    with pytest.raises(NonRetryableException, match="config_error"):
        pw.execute_order.mock_run(inp, parent_outputs=parents, lifespan=deps)
    assert types_of(deps, "run-t1")[-1] == "workflow.failed"
    st = status_of(deps, "run-t1")
    assert (st["status"], st["step"]) == ("failed", "execute") and "PAPER_API_KEY" in st["last_error"]


def test_on_failure_records_once_and_releases_an_unsubmitted_reservation(
    pw: PlaceOrderWorkflow, deps: HatchetDeps
) -> None:
    inp = PlaceOrderInput(order=market_order("f1", amount="0.02"), run_id="run-f1")
    run_place_order_locally(pw, deps, inp, stop_after="validate_risk")
    reservations = Reservations(deps.runtime.client, deps.runtime.keys)
    assert reservations.outstanding("f1") > 0
    result = pw.on_failure.mock_run(inp, lifespan=deps)
    assert result == {"result": "recorded failure"}
    assert reservations.outstanding("f1") == 0
    assert (
        types_of(deps, "run-f1")[-1] == "workflow.failed" and status_of(deps, "run-f1")["status"] == "failed"
    )
    assert pw.on_failure.mock_run(inp, lifespan=deps) == {"result": "already finished"}
    rt = deps.runtime
    assert Workflows(rt.bus, rt.store).resume("run-f1") == "already finished"


def _drain(deps: HatchetDeps, rounds: int = 4) -> StepWorker:
    rt = deps.runtime
    rt.bus.ensure_groups()
    worker = StepWorker(rt.bus, rt.store, rt.step, WorkerConfig(block_ms=10), consumer="w-test")
    for _ in range(rounds):
        worker.poll_once(block_ms=10)
    return worker


@pytest.mark.parametrize("died_after", ["validate_risk", "route_exchange", "execute_order"])
def test_resume_finishes_a_hatchet_run_that_died_on_the_streams_path(
    pw: PlaceOrderWorkflow, deps: HatchetDeps, died_after: str
) -> None:
    rt = deps.runtime
    inp = PlaceOrderInput(order=market_order("z1"), run_id="run-z1")
    run_place_order_locally(pw, deps, inp, stop_after=died_after)
    assert status_of(deps, "run-z1")["status"] == "running"
    resumed = Workflows(rt.bus, rt.store).resume("run-z1")
    assert resumed in ("execute", "portfolio (1 fills not yet applied)")
    _drain(deps)
    st = status_of(deps, "run-z1")
    assert (st["status"], st["outcome"]) == ("completed", "filled")
    types = types_of(deps, "run-z1")
    assert types.count("order.submitted") == 1 and types.count("order.executed") == 1
    assert types[-2:] == ["position.updated", "workflow.completed"] and venue_of(deps).creates == 1


def test_hatchet_and_streams_runs_write_the_same_events_and_progress(
    pw: PlaceOrderWorkflow, deps: HatchetDeps
) -> None:
    rt = deps.runtime
    run_place_order_locally(pw, deps, PlaceOrderInput(order=market_order("p1"), run_id="run-p1"))
    Workflows(rt.bus, rt.store).submit(SubmitOrder(**market_order("p2").model_dump()), run_id="run-p2")
    _drain(deps)
    assert types_of(deps, "run-p1") == types_of(deps, "run-p2") == FULL
    volatile = {"run_id", "client_order_id", "invoker", "started_at", "updated_at", "completed_at"}
    volatile |= {"result_avg_price", "result_notional"}  # the first order moved the book
    hatchet = {k: v for k, v in status_of(deps, "run-p1").items() if k not in volatile}
    streams = {k: v for k, v in status_of(deps, "run-p2").items() if k not in volatile}
    assert hatchet == streams
