"""The one codec: envelopes <-> JSON bytes (orjson) for Redis, DynamoDB and Lambda payloads.

Money travels as JSON strings (``"0.01"``), never as binary floats. A JSON number that arrives anyway is
parsed through its decimal text, so ``0.1`` stays exactly 0.1.

Reading older schema versions: when a payload's shape changes, bump its class's ``SCHEMA_VERSION`` and
register an upcaster ``(type, old_version) -> fn(payload_dict) -> payload_dict`` with ``register_upcaster``.
``decode`` applies the chain old -> current before validation, so stored events are never rewritten and
every reader sees the current shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from zvt_pipeline.errors import InvalidMessage, PayloadTooLarge
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import EVENT_TYPES

MAX_EVENT_BYTES = 64 * 1024
"""Default cap on one encoded event: well under DynamoDB's 400 KB item limit and Lambda's 6 MB payload."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}

# Fields the store assigns; they are kept outside the stored JSON body.
STORE_ASSIGNED = frozenset({"version", "position"})


def register_upcaster(event_type: str, from_version: int, fn: Upcaster) -> None:
    """Register how to turn a ``from_version`` payload of ``event_type`` into ``from_version + 1``."""
    _UPCASTERS[(event_type, from_version)] = fn


def _upcast(data: dict[str, Any]) -> dict[str, Any]:
    type_ = data.get("type")
    cls = EVENT_TYPES.get(type_) if isinstance(type_, str) else None
    version = data.get("schema_version")
    if cls is None or not isinstance(version, int):
        return data
    while version < cls.SCHEMA_VERSION:
        fn = _UPCASTERS.get((cls.TYPE, version))
        if fn is None:
            raise InvalidMessage(
                f"schema_version: no upcaster from {cls.TYPE} v{version} to v{version + 1}",
                field="schema_version",
            )
        data = {**data, "payload": fn(dict(data.get("payload") or {}))}
        version += 1
    if version > cls.SCHEMA_VERSION:
        raise InvalidMessage(
            f"schema_version: {cls.TYPE} v{version} is newer than this build (v{cls.SCHEMA_VERSION})",
            field="schema_version",
        )
    return {**data, "schema_version": version}


def to_dict(envelope: Envelope, *, for_store: bool = False) -> dict[str, Any]:
    return envelope.model_dump(mode="json", exclude=set(STORE_ASSIGNED) if for_store else None)


def encode(envelope: Envelope, *, for_store: bool = False, max_bytes: int = MAX_EVENT_BYTES) -> bytes:
    """Serialize an envelope. ``for_store`` leaves out version/position (the store assigns them)."""
    data = orjson.dumps(to_dict(envelope, for_store=for_store))
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"payload: event {envelope.type} is {len(data)} bytes, more than the {max_bytes} byte limit",
            field="payload",
        )
    return data


def loads(raw: bytes | str, *, max_bytes: int = MAX_EVENT_BYTES) -> Any:
    """Parse JSON text; numbers with a fraction become Decimal-safe strings of their exact text."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"payload: {len(raw)} bytes, more than the {max_bytes} byte limit")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"malformed JSON: {exc}") from None


def first_error(exc: ValidationError) -> InvalidMessage:
    """One clear line naming the field, from pydantic's error list."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    # Our own validators name the field themselves ("price: a limit order needs a price").
    text = err["msg"].removeprefix("Value error, ")
    named = re.match(r"^([a-z_][a-z0-9_.]*): ", text)
    if named:
        loc = f"{loc}.{named.group(1)}" if loc else named.group(1)
        text = text[named.end() :]
    loc = loc or "message"
    text = f"{loc}: {text}"
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return InvalidMessage(text + extra, field=loc)


def from_dict(data: Any, **assigned: int | None) -> Envelope:
    if not isinstance(data, dict):
        raise InvalidMessage("message: an event envelope must be a JSON object")
    data = _upcast(data)
    if assigned:
        data = {**data, **{k: v for k, v in assigned.items() if v is not None}}
    try:
        return Envelope.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc) from None


def decode(
    raw: bytes | str | dict[str, Any], *, max_bytes: int = MAX_EVENT_BYTES, **assigned: int | None
) -> Envelope:
    """Bytes, text or a dict -> a validated Envelope. Raises ``InvalidMessage`` with the field name."""
    data = raw if isinstance(raw, dict) else loads(raw, max_bytes=max_bytes)
    return from_dict(data, **assigned)
