"""The event envelope (DESIGN.md section 2): identity, stream, ordering and causality around a typed payload."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field, SerializeAsAny, model_validator

from zvt_pipeline.messages.events import EVENT_TYPES, Payload
from zvt_pipeline.messages.types import Message, UtcDatetime, utcnow

StreamId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/-]{1,200}$")]

# Fixed namespace so that every node derives the same event id for the same (run, step, n).
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1f0e-8d1a-5b8e-9a57-2f0e6c1d9a31")


def deterministic_event_id(run_id: str, step: str, n: int) -> uuid.UUID:
    """The id of the n-th event a step emits for a run: re-running the step yields the same ids, and the
    event store drops the duplicates. This is what makes every step idempotent by ``(run_id, step)``."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{run_id}:{step}:{n}")


class Envelope(Message):
    event_id: uuid.UUID
    type: str
    stream_id: StreamId
    version: Annotated[int, Field(ge=1)] | None = None
    """Position within ``stream_id``, from 1; assigned by the store on append."""
    position: Annotated[int, Field(ge=1)] | None = None
    """Global position across all streams; assigned by the store on append."""
    correlation_id: Annotated[str, Field(min_length=1, max_length=128)]
    """The workflow run id."""
    causation_id: Annotated[str, Field(max_length=128)] | None = None
    """The event id (or command id) that caused this event."""
    occurred_at: UtcDatetime
    schema_version: Annotated[int, Field(ge=1)]
    payload: SerializeAsAny[Payload]

    @model_validator(mode="before")
    @classmethod
    def _resolve_payload(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        type_ = data.get("type")
        payload_cls = EVENT_TYPES.get(type_) if isinstance(type_, str) else None
        if payload_cls is None:
            raise ValueError(f"type: unknown event type {type_!r}")
        payload = data.get("payload")
        if isinstance(payload, Payload):
            if not isinstance(payload, payload_cls):
                raise ValueError(f"payload: {type(payload).__name__} does not match type {type_!r}")
            return data
        if not isinstance(payload, dict):
            raise ValueError("payload: must be an object")
        return {**data, "payload": payload_cls.model_validate(payload)}

    @classmethod
    def new(
        cls,
        payload: Payload,
        *,
        stream_id: str,
        correlation_id: str,
        causation_id: str | None = None,
        event_id: uuid.UUID | None = None,
    ) -> Envelope:
        """A new, not yet stored event. ``version`` and ``position`` are set by the store."""
        return cls(
            event_id=event_id or uuid.uuid4(),
            type=payload.TYPE,
            stream_id=stream_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            occurred_at=utcnow(),
            schema_version=payload.SCHEMA_VERSION,
            payload=payload,
        )

    def recorded(self, version: int, position: int) -> Envelope:
        return self.model_copy(update={"version": version, "position": position})
