"""The three Lambda handlers (functions/<step>/app.py) on the sample events, against a real Redis.

Each handler is imported as the runtime imports it and called with a Lambda-like context. The environment
its Settings read (REDIS_URL, ZVT_KEY_PREFIX) points at the test's Redis and key prefix, and ``reset()``
makes every test start from a cold start.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.integration.handlers_support import (
    ACCOUNT,
    STEPS,
    InProcessLambdaService,
    context,
    event_text,
    fresh,
    load_event,
    seed_world,
    snapshot,
)
from zvt_pipeline.config import load_settings
from zvt_pipeline.errors import InvalidMessage, PayloadTooLarge, StoreUnavailable
from zvt_pipeline.eventstore.redis import RedisEventStore
from zvt_pipeline.invoke import LambdaInvoker, RemoteRetryable, RemoteTerminal
from zvt_pipeline.lambda_support import InvocationInProgress
from zvt_pipeline.lambda_support.idempotency import idempotency_key_data
from zvt_pipeline.messages import codec
from zvt_pipeline.messages.events import OrderExecuted, OrderRouted, OrderValidated, WorkflowCompleted
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.step import order_stream

NAMES = {s: f"zvt-{s}" for s in STEPS}


@pytest.fixture
def handlers(
    redis_url: str, key_prefix: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, ModuleType]]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ZVT_KEY_PREFIX", key_prefix)
    for name in ("ZVT_EVENT_STORE", "ZVT_VENUES", "AWS_ENDPOINT_URL", "LOCALSTACK_HOST"):
        monkeypatch.delenv(name, raising=False)
    modules = {s: importlib.import_module(f"functions.{s}.app") for s in STEPS}
    for module in modules.values():
        module.reset()
    yield modules
    for module in modules.values():
        module.reset()


def store(redis_client: redis.Redis, keys: Keys) -> RedisEventStore:
    return RedisEventStore(redis_client, keys=keys)


def types(response: dict[str, Any]) -> list[str]:
    return [e["type"] for e in response["events"]]


# --- the sample events ----------------------------------------------------------------------------------


def test_risk_validates_the_sample_order_reserves_and_appends(handlers, redis_client, keys):
    seed_world(redis_client, keys)
    out = handlers["risk"].lambda_handler(fresh(load_event("order_requested")), context("risk"))
    assert set(out) == {"events"}
    assert types(out) == ["order.validated"]
    validated = codec.from_dict(out["events"][0])
    assert isinstance(validated.payload, OrderValidated)
    assert validated.correlation_id == "run-lam-1" and validated.stream_id == "order-lam-1"
    stored = store(redis_client, keys).read(order_stream("lam-1"))
    assert [e.event_id for e in stored] == [validated.event_id]
    assert redis_client.exists(keys.reservation("lam-1"))


def test_execute_fills_the_validated_sample_on_the_paper_venue(handlers, redis_client, keys):
    seed_world(redis_client, keys)
    out = handlers["execute"].lambda_handler(load_event("order_validated"), context("execute"))
    assert types(out) == ["order.routed", "order.submitted", "order.executed"]
    fill = codec.from_dict(out["events"][2]).payload
    assert isinstance(fill, OrderExecuted) and str(fill.amount) == "0.01" and fill.venue == "paper"
    assert [e.type for e in store(redis_client, keys).read(order_stream("lam-2"))] == types(out)


def test_portfolio_applies_the_sample_fill_once_and_completes_the_run(handlers, redis_client, keys):
    event = load_event("order_executed")
    first = handlers["portfolio"].lambda_handler(event, context("portfolio"))
    assert types(first) == ["position.updated", "workflow.completed"]
    completed = codec.from_dict(first["events"][1]).payload
    assert isinstance(completed, WorkflowCompleted) and completed.outcome == "filled"
    balances = redis_client.hgetall(keys.balance(ACCOUNT))
    # Delivered again (a retry, an SQS duplicate): same answer, nothing applied or appended twice.
    again = handlers["portfolio"].lambda_handler(event, context("portfolio"))
    assert again == first
    assert redis_client.hgetall(keys.balance(ACCOUNT)) == balances
    assert len(store(redis_client, keys).read(order_stream("lam-3"))) == 2


def test_a_redelivered_trigger_gets_the_stored_answer_without_running_again(handlers, redis_client, keys):
    seed_world(redis_client, keys)
    event = fresh(load_event("order_requested"))
    first = handlers["risk"].lambda_handler(event, context("risk"))
    records = list(redis_client.scan_iter(match=f"{keys.idempotency('risk')}#*"))
    assert len(records) == 1 and json.loads(redis_client.get(records[0]))["status"] == "COMPLETED"
    before = snapshot(redis_client, keys.prefix)
    again = handlers["risk"].lambda_handler(event, context("risk"))
    # Byte-identical, occurred_at included: the answer came from the idempotency record, not a second run.
    assert again == first
    assert snapshot(redis_client, keys.prefix) == before


def test_sqs_batch_reports_the_bad_record_and_processes_the_others(handlers, redis_client, keys):
    seed_world(redis_client, keys)
    event = fresh(load_event("sqs_batch_one_bad"))
    out = handlers["risk"].lambda_handler(event, context("risk"))
    bad_id = event["Records"][1]["messageId"]
    assert out["batchItemFailures"] == [{"itemIdentifier": bad_id}]
    assert types(out) == ["order.validated", "order.validated"]
    es = store(redis_client, keys)
    assert [e.type for e in es.read(order_stream("lam-sqs-a"))] == ["order.validated"]
    assert [e.type for e in es.read(order_stream("lam-sqs-b"))] == ["order.validated"]
    assert es.read(order_stream("lam-sqs-c")) == []
    assert not redis_client.exists(keys.reservation("lam-sqs-c"))


def test_sqs_batch_of_only_bad_records_reports_each_instead_of_failing_the_invocation(
    handlers, redis_client, keys
):
    event = load_event("sqs_batch_one_bad")
    event["Records"] = [event["Records"][1]]
    before = snapshot(redis_client, keys.prefix)
    out = handlers["risk"].lambda_handler(event, context("risk"))
    assert out == {"events": [], "batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert snapshot(redis_client, keys.prefix) == before


def test_kinesis_batch_applies_the_fill(handlers, redis_client, keys):
    out = handlers["portfolio"].lambda_handler(load_event("kinesis_batch_fill"), context("portfolio"))
    assert out["batchItemFailures"] == []
    assert types(out) == ["position.updated", "workflow.completed"]
    assert redis_client.hexists(keys.position(ACCOUNT), "paper|BTC/USDT")


# --- bad input: a clear error naming the field, nothing written ------------------------------------------


def _oversized() -> dict[str, Any]:
    event = load_event("order_requested")
    event["payload"]["order"]["note"] = "x" * 70_000
    return event


def _nan_number() -> dict[str, Any]:
    # The Lambda runtime parses bodies with json.loads, which accepts a bare NaN.
    return json.loads(event_text("bad_negative_amount").replace('"-0.01"', "NaN"))


def _unknown_fill_symbol() -> dict[str, Any]:
    event = load_event("order_executed")
    event["payload"]["symbol"] = "DOGE/USDT"
    return event


def _seam(trigger: Any, **kw: Any) -> dict[str, Any]:
    return {"step": "risk", "triggers": [trigger], "completes": True, **kw}


BAD_INPUTS: list[tuple[str, str, Any, str]] = [
    ("malformed JSON", "risk", event_text("bad_malformed"), "event"),
    ("unknown type", "risk", load_event("bad_unknown_type"), "type"),
    ("wrong field type", "risk", load_event("bad_wrong_field_type"), "payload.order.side"),
    ("negative amount", "risk", load_event("bad_negative_amount"), "payload.order.amount"),
    ("zero amount", "risk", load_event("bad_zero_amount"), "payload.order.amount"),
    ("NaN amount (string)", "risk", load_event("bad_nan_amount"), "payload.order.amount"),
    ("NaN amount (number)", "risk", _nan_number(), "payload.order.amount"),
    ("absurd precision", "risk", load_event("bad_absurd_precision"), "payload.order.amount"),
    ("unknown symbol", "risk", load_event("bad_unknown_symbol"), "payload.order.symbol"),
    ("oversized payload", "risk", _oversized(), "payload"),
    ("event type the step does not take", "risk", load_event("order_executed"), "type"),
    ("fill with unknown symbol", "portfolio", _unknown_fill_symbol(), "payload.symbol"),
    (
        "bad trigger in a seam request",
        "risk",
        _seam(load_event("bad_negative_amount")),
        "triggers.0.payload.order.amount",
    ),
    ("seam request for another step", "risk", _seam(load_event("order_requested"), step="portfolio"), "step"),
    ("seam request with an unknown field", "risk", _seam(load_event("order_requested"), retry=True), "retry"),
    ("seam request without triggers", "execute", {"step": "execute", "triggers": []}, "triggers"),
    (
        "route with two triggers",
        "execute",
        {"step": "route", "triggers": [load_event("order_validated")] * 2},
        "triggers",
    ),
    ("not an object", "portfolio", [1, 2], "event"),
    (
        "batch from an unsupported source",
        "risk",
        {"Records": [{"eventSource": "aws:s3"}]},
        "Records.0.eventSource",
    ),
]


@pytest.mark.parametrize(
    ("step", "event", "field"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_names_the_field_and_writes_nothing(handlers, redis_client, keys, step, event, field):
    seed_world(redis_client, keys)
    before = snapshot(redis_client, keys.prefix)
    with pytest.raises(InvalidMessage) as raised:
        handlers[step].lambda_handler(event, context(step))
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}:") or field in str(raised.value)
    assert snapshot(redis_client, keys.prefix) == before
    if field == "payload":
        assert isinstance(raised.value, PayloadTooLarge)


def test_a_bad_second_trigger_stops_the_request_before_the_first_runs(handlers, redis_client, keys):
    seed_world(redis_client, keys)
    good = fresh(load_event("order_requested"))
    wrong = load_event("order_executed") | {
        "stream_id": good["stream_id"],
        "correlation_id": good["correlation_id"],
    }
    before = snapshot(redis_client, keys.prefix)
    with pytest.raises(InvalidMessage) as raised:
        handlers["risk"].lambda_handler({"step": "risk", "triggers": [good, wrong]}, context("risk"))
    assert raised.value.field == "triggers.1.type"
    assert snapshot(redis_client, keys.prefix) == before  # no reservation for the first trigger


def test_triggers_of_different_orders_are_refused(handlers, redis_client, keys):
    a = fresh(load_event("order_requested"))
    b = fresh(json.loads(json.dumps(a).replace("lam-1", "lam-9")))
    with pytest.raises(InvalidMessage) as raised:
        handlers["risk"].lambda_handler({"step": "risk", "triggers": [a, b]}, context("risk"))
    assert raised.value.field == "triggers.1.stream_id"


# --- the invoke seam: LambdaInvoker <-> handlers ---------------------------------------------------------


def test_one_order_runs_risk_route_execute_portfolio_through_the_lambda_invoker(handlers, redis_client, keys):
    seed_world(redis_client, keys)
    service = InProcessLambdaService({NAMES[s]: handlers[s].lambda_handler for s in STEPS})
    invoker = LambdaInvoker(service, NAMES)
    trigger = codec.from_dict(fresh(load_event("order_requested")))

    risk = invoker.invoke("risk", [trigger])
    assert [e.type for e in risk.events] == ["order.validated"] and risk.plan.next_step == "execute"
    route = invoker.invoke("route", risk.plan.triggers)
    assert isinstance(route.events[0].payload, OrderRouted) and route.events[0].payload.venue == "paper"
    execute = invoker.invoke("execute", route.plan.triggers)
    assert execute.plan.next_step == "portfolio"
    portfolio = invoker.invoke("portfolio", execute.plan.triggers)
    assert [e.type for e in portfolio.events] == ["position.updated", "workflow.completed"]

    assert [c["function"] for c in service.calls] == [
        "zvt-risk",
        "zvt-execute",
        "zvt-execute",
        "zvt-portfolio",
    ]
    stored = store(redis_client, keys).read(order_stream("lam-1"))
    assert [e.type for e in stored] == [
        "order.validated",
        "order.routed",
        "order.submitted",
        "order.executed",
        "position.updated",
        "workflow.completed",
    ]
    done = stored[-1].payload
    assert isinstance(done, WorkflowCompleted) and done.outcome == "filled"


def test_invalid_input_reaches_the_invoker_as_a_terminal_error(handlers, redis_client, keys):
    service = InProcessLambdaService({NAMES[s]: handlers[s].lambda_handler for s in STEPS})
    trigger = codec.from_dict(load_event("order_executed"))  # a fill sent to risk
    with pytest.raises(RemoteTerminal) as raised:
        LambdaInvoker(service, NAMES).invoke("risk", [trigger])
    assert raised.value.error_type == "InvalidMessage" and raised.value.code == "invalid_message"


def test_a_trigger_in_progress_elsewhere_is_a_retryable_error(handlers, redis_client, keys):
    seed_world(redis_client, keys)
    event = fresh(load_event("order_requested"))
    deps = handlers["risk"].function.dependencies()
    # Another invocation holds the idempotency lock on this trigger.
    persistence = deps.runner.persistence
    persistence.configure(deps.runner.config, key_prefix=deps.runner.key_prefix)
    persistence.save_inprogress(
        data=idempotency_key_data("risk", True, [event["event_id"]]), remaining_time_in_millis=60_000
    )
    with pytest.raises(InvocationInProgress):
        handlers["risk"].lambda_handler(event, context("risk"))
    service = InProcessLambdaService({"zvt-risk": handlers["risk"].lambda_handler})
    with pytest.raises(RemoteRetryable) as raised:
        LambdaInvoker(service, NAMES).invoke("risk", [codec.from_dict(event)])
    assert raised.value.error_type == "InvocationInProgress"
    assert store(redis_client, keys).read(order_stream("lam-1")) == []


def test_unreachable_redis_is_a_retryable_store_error(handlers, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    handlers["risk"].reset()
    with pytest.raises(StoreUnavailable):
        handlers["risk"].lambda_handler(fresh(load_event("order_requested")), context("risk"))
    service = InProcessLambdaService({"zvt-risk": handlers["risk"].lambda_handler})
    with pytest.raises(RemoteRetryable) as raised:
        LambdaInvoker(service, NAMES).invoke("risk", [codec.from_dict(fresh(load_event("order_requested")))])
    assert raised.value.error_type == "StoreUnavailable"


def test_dependencies_are_built_once_per_cold_start(handlers, redis_client, keys):
    function = handlers["portfolio"].function
    handlers["portfolio"].lambda_handler(load_event("order_executed"), context("portfolio"))
    deps = function.dependencies()
    handlers["portfolio"].lambda_handler(load_event("order_executed"), context("portfolio"))
    assert function.dependencies() is deps
    handlers["portfolio"].reset()
    assert function.dependencies() is not deps


# --- DynamoDB event store (moto), as deployed by template.yaml -----------------------------------------


def test_risk_handler_appends_to_the_dynamodb_event_store(
    handlers, redis_client, keys, moto_in_process, monkeypatch
):
    import boto3

    from zvt_pipeline.eventstore.dynamodb import DynamoDBEventStore, create_table

    monkeypatch.setenv("ZVT_EVENT_STORE", "dynamodb")
    monkeypatch.setenv("ZVT_DYNAMODB_TABLE", "zvt-events-lambda-test")
    create_table(boto3.client("dynamodb", region_name="us-east-1"), "zvt-events-lambda-test")
    handlers["risk"].reset()
    seed_world(redis_client, keys)
    out = handlers["risk"].lambda_handler(fresh(load_event("order_requested")), context("risk"))
    assert types(out) == ["order.validated"]
    dynamo = DynamoDBEventStore.from_settings(load_settings())
    assert [str(e.event_id) for e in dynamo.read(order_stream("lam-1"))] == [out["events"][0]["event_id"]]
    assert store(redis_client, keys).read(order_stream("lam-1")) == []  # not in the Redis store


def test_the_seam_request_and_the_bare_envelope_of_one_trigger_are_the_same_work(
    handlers, redis_client, keys
):
    seed_world(redis_client, keys)
    request = fresh(load_event("invoke_risk_request"))
    via_seam = handlers["risk"].lambda_handler(request, context("risk"))
    assert types(via_seam) == ["order.validated"]
    bare = handlers["risk"].lambda_handler(request["triggers"][0], context("risk"))
    assert bare == via_seam
    assert len(store(redis_client, keys).read(order_stream("lam-1"))) == 1
