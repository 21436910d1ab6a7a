"""The Streams invoker on a real Redis: hand-on, dead letters, redrive, claiming stale entries.

The step here is a small real ``Step`` whose failures the test controls; the full pipeline with the real
steps is covered by tests/integration/test_pipeline_*.py.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import redis

from zvt_pipeline.bus.streams import StreamBus
from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.eventstore.redis import RedisEventStore
from zvt_pipeline.messages.commands import SubmitOrder
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import OrderRejected, OrderRequested, Payload
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.step import Step
from zvt_pipeline.workflows.streams_runner import StepWorker, WorkerConfig
from zvt_pipeline.workflows.submit import Workflows


class RejectingRisk(Step):
    """Rejects every order; raises ``failure`` while it is set (to exercise retries and dead letters)."""

    name = "risk"
    accepts = frozenset({"order.requested"})

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.calls = 0

    def run(self, trigger: Envelope) -> list[Payload]:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        assert isinstance(trigger.payload, OrderRequested)
        o = trigger.payload.order
        return [
            OrderRejected(
                client_order_id=o.client_order_id,
                account_id=o.account_id,
                symbol=o.symbol,
                rule="test",
                reason="rejected by test",
            )
        ]


def order(n: int) -> SubmitOrder:
    return SubmitOrder(
        client_order_id=f"t-{n}",
        account_id="A",
        symbol="BTC/USDT",
        side="buy",  # type: ignore[arg-type]
        type="limit",
        amount=Decimal("0.01"),
        price=Decimal("60000"),
    )  # type: ignore[arg-type]


@pytest.fixture
def parts(
    redis_client: redis.Redis, keys: Keys
) -> tuple[StreamBus, RedisEventStore, Workflows, RejectingRisk]:
    bus = StreamBus(redis_client, keys)
    store = RedisEventStore(redis_client, keys=keys)
    bus.ensure_groups()
    return bus, store, Workflows(bus, store), RejectingRisk()


def make_worker(bus: StreamBus, store: RedisEventStore, step: Step, name: str, **cfg: int) -> StepWorker:
    config = WorkerConfig(steps=("risk",), block_ms=10, **cfg)  # type: ignore[arg-type]
    return StepWorker(bus, store, lambda _: step, config, consumer=name)


def drain(worker: StepWorker, rounds: int = 3) -> None:
    for _ in range(rounds):
        worker.poll_once(block_ms=10)


def test_rejection_completes_the_workflow_and_records_events(parts) -> None:  # type: ignore[no-untyped-def]
    bus, store, wf, step = parts
    sub = wf.submit(order(1))
    drain(make_worker(bus, store, step, "w1"))
    status = wf.status(sub.run_id)
    assert status is not None and status["status"] == "completed" and status["outcome"] == "rejected"
    types = [e.type for e in wf.events(sub.run_id)]
    assert types == ["workflow.started", "order.requested", "order.rejected", "workflow.completed"]
    assert bus.pending_count("risk") == 0


def test_duplicate_client_order_id_is_refused_at_submit(parts) -> None:  # type: ignore[no-untyped-def]
    bus, _store, wf, _ = parts
    wf.submit(order(2))
    with pytest.raises(InvalidMessage, match="already used"):
        wf.submit(order(2))
    assert bus.client.xlen(bus.keys.step_stream("risk")) == 1


def test_terminal_error_goes_to_the_dlq_at_once_and_redrive_brings_it_back(parts) -> None:  # type: ignore[no-untyped-def]
    bus, store, wf, step = parts
    sub = wf.submit(order(3))
    step.failure = InvalidMessage("amount: poison for the test", field="amount")
    worker = make_worker(bus, store, step, "w1")
    drain(worker)
    assert step.calls == 1
    dead = bus.dlq_list("risk")
    assert len(dead) == 1 and dead[0]["error"] == "invalid_message" and dead[0]["run_id"] == sub.run_id
    assert "poison for the test" in dead[0]["detail"]
    assert (wf.status(sub.run_id) or {})["status"] == "failed"
    assert [e.type for e in wf.events(sub.run_id)][-1] == "workflow.failed"
    assert bus.pending_count("risk") == 0

    step.failure = None  # "fixed"
    assert bus.dlq_redrive("risk") == 1
    drain(worker)
    assert bus.dlq_list("risk") == []
    assert step.calls == 2
    assert (wf.status(sub.run_id) or {})["outcome"] == "rejected"


def test_retryable_failures_are_claimed_and_dead_lettered_after_max_deliveries(parts) -> None:  # type: ignore[no-untyped-def]
    bus, store, wf, step = parts
    sub = wf.submit(order(4))
    step.failure = RuntimeError("venue down")
    worker = make_worker(bus, store, step, "w1", idle_ms=1, max_deliveries=3)
    drain(worker, rounds=1)
    assert bus.pending_count("risk") == 1  # left pending, not acknowledged
    other = make_worker(bus, store, step, "w2", idle_ms=1, max_deliveries=3)
    for _ in range(200):  # each claim needs the entry idle for >= 1 ms
        if bus.dlq_list("risk"):
            break
        time.sleep(0.002)
        other.claim_stale(force=True)
    dead = bus.dlq_list("risk")
    assert len(dead) == 1 and dead[0]["error"] == "max_deliveries"
    assert "venue down" in dead[0]["detail"]
    assert step.calls == 3  # tried exactly max_deliveries times, then dead-lettered
    assert bus.pending_count("risk") == 0
    assert (wf.status(sub.run_id) or {})["status"] == "failed"


def test_malformed_entry_is_dead_lettered(parts) -> None:  # type: ignore[no-untyped-def]
    bus, store, _, step = parts
    bus.client.xadd(bus.keys.step_stream("risk"), {"r": "run-x", "t": b"{not json"})
    drain(make_worker(bus, store, step, "w1"))
    dead = bus.dlq_list("risk")
    assert len(dead) == 1 and dead[0]["error"] == "invalid_message"
    assert step.calls == 0


def test_resume_republishes_the_first_unfinished_step(parts) -> None:  # type: ignore[no-untyped-def]
    bus, store, wf, step = parts
    sub = wf.submit(order(5))
    # Simulate a lost hand-on (e.g. a Hatchet run that died): drop the risk entry.
    bus.client.delete(bus.keys.step_stream("risk"))
    bus.ensure_groups()
    assert wf.resume(sub.run_id) == "risk"
    drain(make_worker(bus, store, step, "w1"))
    assert (wf.status(sub.run_id) or {})["outcome"] == "rejected"
    assert wf.resume(sub.run_id) == "already finished"
