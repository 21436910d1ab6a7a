"""Parsing a Lambda event into envelopes: the four shapes, and bad input named by field (pure, no Redis)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from zvt_pipeline.errors import InvalidMessage, PayloadTooLarge
from zvt_pipeline.lambda_support.requests import (
    Batch,
    InputLimits,
    Request,
    kinesis_body,
    parse_body,
    parse_event,
)

EVENTS = Path(__file__).resolve().parents[1] / "events"
LIMITS = InputLimits(known_symbols=frozenset({"BTC/USDT", "ETH/USDT"}))


def sample(name: str) -> Any:
    return json.loads((EVENTS / f"{name}.json").read_text())


def invalid(event: Any, limits: InputLimits = LIMITS) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as raised:
        parse_event(event, limits)
    return raised.value


def test_a_bare_envelope_is_one_trigger_of_the_functions_own_step():
    parsed = parse_event(sample("order_requested"), LIMITS)
    assert isinstance(parsed, Request)
    assert parsed.step is None and parsed.completes and parsed.source == "envelope"
    assert [t.type for t in parsed.triggers] == ["order.requested"]
    assert parsed.run_id == "run-lam-1"


def test_the_seam_request_keeps_step_and_completes():
    event = sample("invoke_risk_request") | {"completes": False}
    parsed = parse_event(event, LIMITS)
    assert isinstance(parsed, Request)
    assert (parsed.step, parsed.completes, parsed.source) == ("risk", False, "invoke")


def test_json_text_is_parsed_first():
    parsed = parse_event(json.dumps(sample("order_executed")), LIMITS)
    assert isinstance(parsed, Request) and parsed.triggers[0].type == "order.executed"


def test_sqs_and_kinesis_batches_are_recognised_and_left_whole():
    sqs = parse_event(sample("sqs_batch_one_bad"), LIMITS)
    kinesis = parse_event(sample("kinesis_batch_fill"), LIMITS)
    assert isinstance(sqs, Batch) and sqs.source == "sqs" and len(sqs.event["Records"]) == 3
    assert isinstance(kinesis, Batch) and kinesis.source == "kinesis"


def test_a_kinesis_record_body_decodes_to_an_envelope():
    record = sample("kinesis_batch_fill")["Records"][0]

    class Data:
        data = record["kinesis"]["data"]

    class KinesisRecord:
        kinesis = Data()

    parsed = parse_body(kinesis_body(KinesisRecord()), LIMITS, via="kinesis")
    assert parsed.source == "kinesis" and parsed.triggers[0].type == "order.executed"


def test_a_seam_request_arriving_on_a_queue_is_external():
    # The unknown-symbol guard applies to it; the seam itself is exempt.
    body = {"step": "risk", "triggers": [sample("bad_unknown_symbol")]}
    assert parse_body(body, LIMITS, via="direct").source == "invoke"
    with pytest.raises(InvalidMessage) as raised:
        parse_body(json.dumps(body), LIMITS, via="sqs")
    assert raised.value.field == "triggers.0.payload.order.symbol"


@pytest.mark.parametrize(
    ("name", "field", "text"),
    [
        ("bad_unknown_type", "type", "unknown event type 'order.teleported'"),
        ("bad_wrong_field_type", "payload.order.side", "Input should be 'buy' or 'sell'"),
        ("bad_negative_amount", "payload.order.amount", "greater than 0"),
        ("bad_zero_amount", "payload.order.amount", "greater than 0"),
        ("bad_nan_amount", "payload.order.amount", "finite number"),
        ("bad_absurd_precision", "payload.order.amount", "no more than 18 decimal places"),
        (
            "bad_unknown_symbol",
            "payload.order.symbol",
            "unknown symbol 'DOGE/USDT' (markets: BTC/USDT, ETH/USDT)",
        ),
    ],
)
def test_bad_samples_name_the_field(name: str, field: str, text: str):
    error = invalid(sample(name))
    assert error.field == field
    assert str(error).startswith(f"{field}: ") and text in str(error)


def test_malformed_json_text():
    error = invalid((EVENTS / "bad_malformed.json").read_text())
    assert error.field == "event" and "malformed JSON" in str(error)


def test_an_oversized_envelope_is_refused_before_validation():
    event = sample("order_requested")
    event["payload"]["order"]["note"] = "x" * 2000
    error = invalid(event, InputLimits(max_event_bytes=1024))
    assert isinstance(error, PayloadTooLarge) and error.field == "payload"
    assert "more than the 1024 byte limit" in str(error)


def test_oversized_json_text_is_refused_before_parsing():
    limits = InputLimits(max_event_bytes=1024, max_triggers=2)
    error = invalid("[" + "1," * 2000 + "1]", limits)
    assert isinstance(error, PayloadTooLarge) and error.field == "event"


def test_too_many_triggers():
    trigger = sample("order_requested")
    error = invalid({"step": "risk", "triggers": [trigger] * 3}, InputLimits(max_triggers=2))
    assert error.field == "triggers" and "3 triggers, more than 2" in str(error)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"step": "rebalance", "triggers": [{}]}, "step"),
        ({"step": "risk", "triggers": []}, "triggers"),
        ({"step": "risk", "triggers": "x"}, "triggers"),
        ({"step": "risk", "triggers": [{}], "completes": "yes"}, "completes"),
        ({"step": "risk", "triggers": [{}], "extra": 1}, "extra"),
        ({"step": "risk", "triggers": [{"type": "order.requested"}]}, "triggers.0.payload"),
        ({"Records": []}, "Records"),
        ({"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:kinesis"}]}, "Records"),
        (42, "event"),
    ],
)
def test_bad_requests_name_the_field(event: Any, field: str):
    assert invalid(event).field == field


def test_triggers_of_one_request_belong_to_one_run():
    a = sample("order_requested")
    b = a | {"correlation_id": "run-other"}
    assert invalid({"step": "risk", "triggers": [a, b]}).field == "triggers.1.correlation_id"


def test_without_known_symbols_the_guard_is_off():
    parsed = parse_event(sample("bad_unknown_symbol"), InputLimits())
    assert isinstance(parsed, Request)


def test_kinesis_data_that_is_not_base64():
    class Data:
        data = "%%%not-base64%%%"

    class KinesisRecord:
        kinesis = Data()

    with pytest.raises(InvalidMessage) as raised:
        kinesis_body(KinesisRecord())
    assert raised.value.field == "kinesis.data"
    assert base64.b64decode(sample("kinesis_batch_fill")["Records"][0]["kinesis"]["data"])
