"""The Lambda invoker with botocore's Stubber: function name, payload, answer parsing, error mapping."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from zvt_pipeline.config import load_settings
from zvt_pipeline.errors import RetryableError, TerminalError
from zvt_pipeline.invoke import LambdaInvoker, RemoteRetryable, RemoteTerminal, lambda_function_names
from zvt_pipeline.messages import codec
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import OrderRejected, OrderRequested, OrderValidated, Reservation
from zvt_pipeline.step import emit, order_stream
from zvt_pipeline.workflows.routing import Plan

NAMES = {"risk": "zvt-risk-fn", "execute": "zvt-execute-fn", "portfolio": "zvt-portfolio-fn"}


def requested() -> Envelope:
    order = OrderSpec(
        client_order_id="c1",
        account_id="A",
        symbol="BTC/USDT",
        side="buy",  # type: ignore[arg-type]
        type="limit",  # type: ignore[arg-type]
        amount=Decimal("0.01"),
        price=Decimal("60000"),
    )
    return Envelope.new(OrderRequested(order=order), stream_id=order_stream("c1"), correlation_id="run-1")


def client_and_stub() -> tuple[Any, Stubber]:
    client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def answer(body: Any, function_error: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(body).encode())}
    if function_error:
        response["FunctionError"] = function_error
    return response


def test_invoke_sends_the_triggers_to_the_steps_function_and_parses_the_events() -> None:
    trigger = requested()
    assert isinstance(trigger.payload, OrderRequested)
    validated = emit(
        trigger,
        "risk",
        [
            OrderValidated(
                order=trigger.payload.order, reservation=Reservation(currency="USDT", amount=Decimal("600"))
            )
        ],
    )
    client, stub = client_and_stub()
    expected_payload = {"step": "risk", "triggers": [codec.to_dict(trigger)], "completes": True}
    stub.add_response(
        "invoke",
        answer({"events": [codec.to_dict(e) for e in validated]}),
        {
            "FunctionName": "zvt-risk-fn",
            "InvocationType": "RequestResponse",
            "Payload": json.dumps(expected_payload).encode(),
        },
    )
    with stub:
        out = LambdaInvoker(client, NAMES).invoke("risk", [trigger])
    stub.assert_no_pending_responses()
    assert [e.event_id for e in out.events] == [validated[0].event_id]
    assert out.plan.next_step == "execute" and out.plan.triggers[0].type == "order.validated"


def test_a_rejection_answer_finishes_the_plan_like_run_step() -> None:
    trigger = requested()
    rejected = OrderRejected(
        client_order_id="c1", account_id="A", symbol="BTC/USDT", rule="max_notional", reason="too big"
    )
    client, stub = client_and_stub()
    stub.add_response(
        "invoke", answer({"events": [codec.to_dict(e) for e in emit(trigger, "risk", [rejected])]})
    )
    with stub:
        out = LambdaInvoker(client, NAMES).invoke("risk", [trigger])
    assert out.plan == Plan(outcome="rejected", summary={"rule": "max_notional", "reason": "too big"})


def test_route_uses_the_execute_function() -> None:
    client, stub = client_and_stub()
    stub.add_response(
        "invoke",
        answer({"events": []}),
        {
            "FunctionName": "zvt-execute-fn",
            "InvocationType": "RequestResponse",
            "Payload": json.dumps({"step": "route", "triggers": [], "completes": True}).encode(),
        },
    )
    with stub:
        LambdaInvoker(client, NAMES).invoke("route", [])
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("error_type", "function_error", "expected", "code"),
    [
        ("VenueTerminal", "Handled", RemoteTerminal, "venue_terminal"),
        ("InvalidMessage", "Unhandled", RemoteTerminal, "invalid_message"),
        ("VenueRetryable", "Unhandled", RemoteRetryable, "venue_retryable"),
        ("AmbiguousSubmit", "Unhandled", RemoteRetryable, "ambiguous_submit"),
        ("ConcurrencyConflict", "Unhandled", RemoteRetryable, "concurrency_conflict"),
        ("Sandbox.Timedout", "Unhandled", RemoteRetryable, "remote_retryable"),
        ("KeyError", "Unhandled", RemoteRetryable, "remote_retryable"),
    ],
)
def test_function_errors_map_to_retryable_or_terminal(
    error_type: str, function_error: str, expected: type, code: str
) -> None:
    client, stub = client_and_stub()
    stub.add_response(
        "invoke", answer({"errorType": error_type, "errorMessage": "boom at the venue"}, function_error)
    )
    with stub, pytest.raises(expected) as info:
        LambdaInvoker(client, NAMES).invoke("execute", [requested()])
    assert info.value.code == code and info.value.error_type == error_type
    assert isinstance(info.value, RetryableError if expected is RemoteRetryable else TerminalError)


@pytest.mark.parametrize(
    ("aws_code", "expected"),
    [
        ("TooManyRequestsException", RemoteRetryable),
        ("ServiceException", RemoteRetryable),
        ("ResourceNotFoundException", RemoteTerminal),
        ("RequestTooLargeException", RemoteTerminal),
    ],
)
def test_invoke_api_errors_map_by_code(aws_code: str, expected: type) -> None:
    client, stub = client_and_stub()
    stub.add_client_error("invoke", service_error_code=aws_code, http_status_code=429)
    with stub, pytest.raises(expected, match=aws_code):
        LambdaInvoker(client, NAMES).invoke("portfolio", [requested()])


def test_an_answer_without_events_is_terminal() -> None:
    client, stub = client_and_stub()
    stub.add_response("invoke", answer({"statusCode": 200}))
    with stub, pytest.raises(RemoteTerminal, match="no 'events'"):
        LambdaInvoker(client, NAMES).invoke("risk", [requested()])


def test_function_names_come_from_settings() -> None:
    settings = load_settings(risk_function_name="r-fn", execute_function_name="arn:aws:lambda:x:1:function:e")
    assert lambda_function_names(settings) == {"risk": "r-fn", "execute": "arn:aws:lambda:x:1:function:e"}
    with pytest.raises(TerminalError, match="portfolio"):
        LambdaInvoker(None, lambda_function_names(settings)).function_for("portfolio")
