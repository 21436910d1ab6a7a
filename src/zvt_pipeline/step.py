"""The step contract: ``step(trigger event, state read from Redis) -> new events``.

Every invoker (Redis Streams worker, Hatchet task, Lambda handler) runs a step the same way::

    new_events = step.handle(trigger)          # reads/updates Redis state idempotently
    store.append(trigger.stream_id, new_events) # duplicates are dropped by event id

A step is idempotent by ``(run, step, trigger)``: the ids of the events it emits are derived from the run
id, the step name and the trigger's event id, so running it twice (a retry, a resumed workflow) yields the
same ids and the event store writes nothing new. State changes a step makes in Redis (a risk reservation,
a fill applied to a position) are keyed the same way so they happen once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.messages.envelope import Envelope, deterministic_event_id
from zvt_pipeline.messages.events import Payload


def order_stream(client_order_id: str) -> str:
    """All events of one order's workflow live in one stream."""
    return f"order-{client_order_id}"


def emit(trigger: Envelope, step: str, payloads: Sequence[Payload]) -> list[Envelope]:
    """Wrap a step's payloads into envelopes caused by ``trigger``, with deterministic ids."""
    run_id = trigger.correlation_id
    return [
        Envelope.new(
            payload,
            stream_id=trigger.stream_id,
            correlation_id=run_id,
            causation_id=str(trigger.event_id),
            event_id=deterministic_event_id(run_id, f"{step}/{trigger.event_id}", n),
        )
        for n, payload in enumerate(payloads)
    ]


class Step(ABC):
    """Base of the three step functions. Subclasses implement ``run`` (payloads out) and list the
    event types they accept; dependencies come through the constructor."""

    name: ClassVar[str]
    accepts: ClassVar[frozenset[str]]

    def handle(self, trigger: Envelope) -> list[Envelope]:
        if trigger.type not in self.accepts:
            raise InvalidMessage(
                f"type: step {self.name!r} does not handle {trigger.type!r} (accepts {sorted(self.accepts)})",
                field="type",
            )
        return emit(trigger, self.name, self.run(trigger))

    @abstractmethod
    def run(self, trigger: Envelope) -> list[Payload]:
        """Decide, update state idempotently, and return the new event payloads."""
