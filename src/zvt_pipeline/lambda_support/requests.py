"""What a step function accepts, turned into envelopes before anything runs or is written.

Event shapes, detected in this order:

1. the invoke seam's request ``{"step": "risk", "triggers": [<envelope>...], "completes": true}``
   (``invoke.LambdaInvoker``, Hatchet tasks);
2. one bare envelope (``aws lambda invoke``, the console, an EventBridge target...);
3. an SQS batch ``{"Records": [{"eventSource": "aws:sqs", "body": "<shape 1 or 2 as JSON text>"}...]}``;
4. a Kinesis batch: records with ``eventSource`` ``aws:kinesis`` whose ``kinesis.data`` is base64 of
   shape 1 or 2.

A string event is parsed as JSON text first. Every error is an ``InvalidMessage`` whose ``field`` names the
offending field (``triggers.0.payload.order.amount``), raised before the step runs. The seam request is
parsed with powertools' Parser (``StepRequest``); envelopes go through ``codec`` like everywhere else, so
stored schema versions are upcast the same way on every path.

Unknown symbols: an ``order.requested`` whose symbol has no market is, for the step itself, a business
decision (risk records ``order.rejected`` with rule ``symbol_allowed``). At this edge, input from outside the
pipeline (shapes 2-4) is refused as invalid instead, and nothing is written. The seam request (shape 1) is
exempt, because it must produce exactly what the in-process invoker produces for the same run.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StrictBool, ValidationError

from zvt_pipeline.errors import InvalidMessage, PayloadTooLarge
from zvt_pipeline.messages import codec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.types import Message

StepName = Literal["risk", "route", "execute", "portfolio"]
Source = Literal["invoke", "envelope", "sqs", "kinesis"]
BATCH_SOURCES: dict[str, Source] = {"aws:sqs": "sqs", "aws:kinesis": "kinesis"}
ENVELOPE_FIELDS = frozenset(Envelope.model_fields) | {"message"}


class InputLimits(Message):
    """Bounds on one request, checked before validation."""

    max_event_bytes: Annotated[int, Field(ge=1024)] = codec.MAX_EVENT_BYTES
    """Largest encoded envelope (``ZVT_MAX_EVENT_BYTES``); the event store refuses larger ones anyway."""
    max_triggers: Annotated[int, Field(ge=1)] = 1000
    """Most triggers in one request: the fills of one execution fit with room to spare."""
    known_symbols: frozenset[str] | None = None
    """Symbols with a market (the runtime's markets); ``None`` skips the unknown-symbol check."""


class StepRequest(Message):
    """The invoke seam's request, as ``invoke.LambdaInvoker.payload`` writes it."""

    step: StepName
    triggers: Annotated[tuple[dict[str, Any], ...], Field(min_length=1)]
    completes: StrictBool = True


@dataclass(frozen=True)
class Request:
    """One run of a step: what ``run_step`` (or ``run_route``) is called with."""

    step: str | None
    """``None``: the function's own step (a bare envelope names none)."""
    triggers: tuple[Envelope, ...]
    completes: bool
    source: Source

    @property
    def run_id(self) -> str:
        return self.triggers[-1].correlation_id


@dataclass(frozen=True)
class Batch:
    """An SQS or Kinesis batch, left whole for powertools' ``BatchProcessor``."""

    source: Literal["sqs", "kinesis"]
    event: Mapping[str, Any]


def parse_event(event: Any, limits: InputLimits) -> Request | Batch:
    """Classify a Lambda event and validate it (a batch's records are validated one by one later)."""
    if isinstance(event, str | bytes):
        event = _loads(event, limits, field="event")
    if not isinstance(event, dict):
        raise InvalidMessage(f"event: expected a JSON object, got {type(event).__name__}", field="event")
    records = event.get("Records")
    if isinstance(records, list) and "type" not in event:
        return Batch(_batch_source(records), event)
    return parse_body(event, limits, via="direct")


def parse_body(data: Any, limits: InputLimits, *, via: Literal["direct", "sqs", "kinesis"]) -> Request:
    """A seam request or a bare envelope: a direct invocation's event, or one SQS/Kinesis record's body."""
    if isinstance(data, str | bytes):
        data = _loads(data, limits, field="body")
    if not isinstance(data, dict):
        raise InvalidMessage(f"body: expected a JSON object, got {type(data).__name__}", field="body")
    if "triggers" in data or "step" in data:
        # Only a direct invocation is the seam; a request put on a queue came from outside.
        return _parse_request(data, limits, source="invoke" if via == "direct" else via)
    source: Source = "envelope" if via == "direct" else via
    envelope = _decode(data, limits, prefix="")
    _check_symbols([envelope], limits, prefix="")
    return Request(step=None, triggers=(envelope,), completes=True, source=source)


def sqs_body(record: Any) -> str:
    """The body of a powertools ``SQSRecord``."""
    return str(record.body)


def kinesis_body(record: Any) -> bytes:
    """The decoded data of a powertools ``KinesisStreamRecord``."""
    try:
        return base64.b64decode(record.kinesis.data, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidMessage("kinesis.data: not valid base64", field="kinesis.data") from None


# --- internals -----------------------------------------------------------------------------------------


def _batch_source(records: list[Any]) -> Literal["sqs", "kinesis"]:
    if not records:
        raise InvalidMessage("Records: empty batch", field="Records")
    sources = set()
    for i, record in enumerate(records):
        source = record.get("eventSource") if isinstance(record, dict) else None
        if source not in BATCH_SOURCES:
            raise InvalidMessage(
                f"Records.{i}.eventSource: {source!r} is not aws:sqs or aws:kinesis",
                field=f"Records.{i}.eventSource",
            )
        sources.add(BATCH_SOURCES[source])
    if len(sources) > 1:
        raise InvalidMessage("Records: a batch mixes SQS and Kinesis records", field="Records")
    source = sources.pop()
    assert source in ("sqs", "kinesis")
    return source


def _loads(raw: str | bytes, limits: InputLimits, *, field: str) -> Any:
    # A request can carry several triggers, each up to the event limit.
    cap = limits.max_event_bytes * limits.max_triggers
    if len(raw) > cap:
        raise PayloadTooLarge(f"{field}: {len(raw)} bytes, more than the {cap} byte limit", field=field)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"{field}: malformed JSON: {exc}", field=field) from None


def _parse_request(data: dict[str, Any], limits: InputLimits, *, source: Source) -> Request:
    from aws_lambda_powertools.utilities.parser import parse

    try:
        request = parse(event=data, model=StepRequest)
    except ValidationError as exc:
        raise codec.first_error(exc) from None
    if len(request.triggers) > limits.max_triggers:
        raise InvalidMessage(
            f"triggers: {len(request.triggers)} triggers, more than {limits.max_triggers}",
            field="triggers",
        )
    triggers = [_decode(t, limits, prefix=f"triggers.{i}.") for i, t in enumerate(request.triggers)]
    _check_same_run(triggers)
    if source != "invoke":
        _check_symbols(triggers, limits, prefix="triggers.")
    return Request(request.step, tuple(triggers), request.completes, source)


def _decode(data: dict[str, Any], limits: InputLimits, *, prefix: str) -> Envelope:
    size = len(orjson.dumps(data))
    if size > limits.max_event_bytes:
        raise PayloadTooLarge(
            f"{prefix}payload: envelope is {size} bytes, more than the {limits.max_event_bytes} byte limit",
            field=f"{prefix}payload",
        )
    try:
        return codec.from_dict(data)
    except InvalidMessage as exc:
        text, field = str(exc), exc.field
        # The payload is validated inside the envelope's validator, so its errors are located relative to
        # the payload ("order.amount"): name the full path.
        if field and field.split(".", 1)[0] not in ENVELOPE_FIELDS:
            text = f"payload.{text}" if text.startswith(f"{field}:") else text
            field = f"payload.{field}"
        field = f"{prefix}{field}" if field else prefix.rstrip(".") or None
        raise InvalidMessage(f"{prefix}{text}", field=field) from None


def _check_same_run(triggers: Sequence[Envelope]) -> None:
    # run_step appends every event to the last trigger's stream: triggers of different orders or runs
    # would put one order's events into another's stream.
    first = triggers[0]
    for i, t in enumerate(triggers[1:], start=1):
        if t.stream_id != first.stream_id:
            raise InvalidMessage(
                f"triggers.{i}.stream_id: {t.stream_id!r} differs from {first.stream_id!r} "
                "(one request runs one order's triggers)",
                field=f"triggers.{i}.stream_id",
            )
        if t.correlation_id != first.correlation_id:
            raise InvalidMessage(
                f"triggers.{i}.correlation_id: {t.correlation_id!r} differs from {first.correlation_id!r} "
                "(one request runs one workflow run's triggers)",
                field=f"triggers.{i}.correlation_id",
            )


def _symbols(envelope: Envelope) -> Iterable[tuple[str, str]]:
    payload = envelope.payload
    order = getattr(payload, "order", None)
    if order is not None:
        yield "payload.order.symbol", order.symbol
    symbol = getattr(payload, "symbol", None)
    if isinstance(symbol, str):
        yield "payload.symbol", symbol


def _check_symbols(triggers: Sequence[Envelope], limits: InputLimits, *, prefix: str) -> None:
    known = limits.known_symbols
    if known is None:
        return
    for i, envelope in enumerate(triggers):
        for path, symbol in _symbols(envelope):
            if symbol not in known:
                where = f"{prefix}{i}.{path}" if prefix else path
                raise InvalidMessage(
                    f"{where}: unknown symbol {symbol!r} (markets: {', '.join(sorted(known)) or 'none'})",
                    field=where,
                )
