"""``submit --via hatchet`` when the engine cannot be reached: the run is recorded first, the error says how
to finish it, and ``resume`` + a Streams worker does."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis

from tests.integration.hatchet.support import fund, make_runtime, market_order, offline_hatchet
from zvt_pipeline.messages.commands import SubmitOrder
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.workflows.hatchet.client import HatchetUnavailable, submit_via_hatchet
from zvt_pipeline.workflows.streams_runner import StepWorker, WorkerConfig
from zvt_pipeline.workflows.submit import Workflows


@pytest.mark.slow  # the SDK retries the refused gRPC connection for ~15 s before giving up
def test_unreachable_engine_leaves_a_recorded_run_that_resume_finishes(
    redis_client: redis.Redis, keys: Keys
) -> None:
    rt = make_runtime(redis_client, keys)
    fund(rt)
    wf = Workflows(rt.bus, rt.store)
    ctx = SimpleNamespace(workflows=wf)
    command = SubmitOrder(**market_order("s1").model_dump())
    with pytest.raises(HatchetUnavailable, match="zvt-pipeline resume run-s1"):
        submit_via_hatchet(ctx, command, "run-s1", hatchet=offline_hatchet())  # type: ignore[arg-type]
    status = wf.status("run-s1") or {}
    assert (status["status"], status["invoker"]) == ("running", "hatchet")
    assert [e.type for e in wf.events("run-s1")] == ["workflow.started", "order.requested"]

    assert wf.resume("run-s1") == "risk"
    rt.bus.ensure_groups()
    worker = StepWorker(rt.bus, rt.store, rt.step, WorkerConfig(block_ms=10), consumer="w-submit")
    for _ in range(4):
        worker.poll_once(block_ms=10)
    status = wf.status("run-s1") or {}
    assert (status["status"], status["outcome"]) == ("completed", "filled")
