"""Start, inspect and resume order workflows on the Streams path (also used after a Hatchet run died).

A run is recorded before it is published, so a crash at any point leaves something ``resume`` can finish:
1. ``wf:<run_id>`` hash + ``wf:open`` index (status ``running``, step ``risk``);
2. ``workflow.started`` + ``order.requested`` appended to ``order-<client_order_id>`` (expected version 0:
   a client_order_id already in use is refused here, before any risk is taken);
3. the trigger is handed to ``steps:risk``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zvt_pipeline.bus.streams import StreamBus
from zvt_pipeline.errors import ConcurrencyConflict, InvalidMessage
from zvt_pipeline.eventstore.base import NO_STREAM, EventStore
from zvt_pipeline.messages.commands import OrderSpec, SubmitOrder
from zvt_pipeline.messages.envelope import Envelope, deterministic_event_id
from zvt_pipeline.messages.events import (
    OrderExecuted,
    OrderRequested,
    PositionUpdated,
    WorkflowStarted,
)
from zvt_pipeline.messages.types import utcnow
from zvt_pipeline.step import order_stream
from zvt_pipeline.workflows.routing import NEXT_STEP


def new_run_id() -> str:
    return uuid.uuid4().hex


def default_client_order_id(run_id: str) -> str:
    """Derived from the run, so a retried run submits the same clientOrderId to the exchange."""
    return f"zvt-{run_id[:28]}"


def start_events(order: OrderSpec, run_id: str, invoker: str = "streams") -> list[Envelope]:
    stream = order_stream(order.client_order_id)
    started = WorkflowStarted(
        run_id=run_id,
        client_order_id=order.client_order_id,
        account_id=order.account_id,
        invoker=invoker,
    )
    return [
        Envelope.new(
            started,
            stream_id=stream,
            correlation_id=run_id,
            event_id=deterministic_event_id(run_id, "submit", 0),
        ),
        Envelope.new(
            OrderRequested(order=OrderSpec.model_validate(order.model_dump())),
            stream_id=stream,
            correlation_id=run_id,
            event_id=deterministic_event_id(run_id, "submit", 1),
        ),
    ]


@dataclass(frozen=True)
class Submitted:
    run_id: str
    client_order_id: str


class Workflows:
    def __init__(self, bus: StreamBus, store: EventStore) -> None:
        self.bus = bus
        self.store = store
        self.keys = bus.keys
        self.client = bus.client

    def progress_fields(self, order: OrderSpec, run_id: str, invoker: str) -> dict[str, str]:
        now = utcnow().isoformat()
        return {
            "run_id": run_id,
            "status": "running",
            "step": "risk",
            "client_order_id": order.client_order_id,
            "account_id": order.account_id,
            "symbol": order.symbol,
            "invoker": invoker,
            "started_at": now,
            "updated_at": now,
        }

    def submit(self, command: SubmitOrder, run_id: str | None = None, invoker: str = "streams") -> Submitted:
        return self.submit_many([command], [run_id] if run_id else None, invoker)[0]

    def submit_many(
        self, commands: Sequence[SubmitOrder], run_ids: Sequence[str] | None = None, invoker: str = "streams"
    ) -> list[Submitted]:
        """Submit several orders with one round trip per phase (used by the demo and the benchmark)."""
        runs = list(run_ids) if run_ids else [new_run_id() for _ in commands]
        pipe = self.client.pipeline(transaction=False)
        for cmd, run_id in zip(commands, runs, strict=True):
            pipe.hset(self.keys.workflow(run_id), mapping=self.progress_fields(cmd, run_id, invoker))
            pipe.zadd(self.keys.workflows_open, {run_id: utcnow().timestamp()})
        pipe.execute()
        out = []
        pipe = self.client.pipeline(transaction=True)
        for cmd, run_id in zip(commands, runs, strict=True):
            events = start_events(cmd, run_id, invoker)
            try:
                self.store.append(events[0].stream_id, events, expected_version=NO_STREAM)
            except ConcurrencyConflict:
                self.client.delete(self.keys.workflow(run_id))
                self.client.zrem(self.keys.workflows_open, run_id)
                raise InvalidMessage(
                    f"client_order_id: {cmd.client_order_id!r} is already used by another order",
                    field="client_order_id",
                ) from None
            if invoker == "streams":
                self.bus.add_handoff(pipe, "risk", run_id, [events[1]])
            out.append(Submitted(run_id, cmd.client_order_id))
        pipe.execute()
        return out

    # --- inspection ------------------------------------------------------------------------------------

    def status(self, run_id: str) -> dict[str, Any] | None:
        raw = self.client.hgetall(self.keys.workflow(run_id))
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    def events(self, run_id: str) -> list[Envelope]:
        status = self.status(run_id)
        if not status:
            return []
        return [
            e for e in self.store.read(order_stream(status["client_order_id"])) if e.correlation_id == run_id
        ]

    # --- resume ----------------------------------------------------------------------------------------

    def resume(self, run_id: str) -> str:
        """Re-publish the trigger for the first unfinished step of a run, from the event store alone.

        Safe to call on a run that is still progressing: steps are idempotent, so the extra trigger
        appends nothing new and sends no second exchange order. Returns what was done."""
        events = self.events(run_id)
        if not events:
            return "unknown run (no events)"
        types = [e.type for e in events]
        if "workflow.completed" in types or "workflow.failed" in types:
            self.client.zrem(self.keys.workflows_open, run_id)
            return "already finished"
        fills = [e for e in events if isinstance(e.payload, OrderExecuted)]
        applied = {e.payload.trade_id for e in events if isinstance(e.payload, PositionUpdated)}
        if fills:
            self.bus.publish("portfolio", run_id, fills)
            missing = sum(
                1 for f in fills if isinstance(f.payload, OrderExecuted) and f.payload.trade_id not in applied
            )
            return f"portfolio ({missing} fills not yet applied)"
        last = next((e for e in reversed(events) if e.type in NEXT_STEP), None)
        if last is None:
            return "nothing to resume"
        step = NEXT_STEP[last.type]
        self.bus.publish(step, run_id, [last])
        return step

    def resume_stale(self, older_than_s: float) -> list[str]:
        """Resume every open run not updated for ``older_than_s`` (a worker runs this when it starts)."""
        cutoff = utcnow().timestamp() - older_than_s
        resumed = []
        for raw in self.client.zrangebyscore(self.keys.workflows_open, 0, cutoff):
            run_id = raw.decode()
            updated = (self.status(run_id) or {}).get("updated_at")
            if updated and datetime.fromisoformat(updated).timestamp() > cutoff:
                continue
            self.resume(run_id)
            resumed.append(run_id)
        return resumed
