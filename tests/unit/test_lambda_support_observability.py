"""Secret redaction in logs and errors, and the error mapping of the step functions (pure)."""

from __future__ import annotations

import io
import json
import logging

import pytest
import redis
from pydantic import ValidationError

from zvt_pipeline.errors import ConcurrencyConflict, InvalidMessage, StoreUnavailable
from zvt_pipeline.lambda_support.errors import InvocationInProgress, map_error, redact_exception
from zvt_pipeline.lambda_support.observability import (
    ObservabilityConfig,
    RedactingFilter,
    Redactor,
    powertools,
    secret_values,
)
from zvt_pipeline.local_invoke import LocalContext
from zvt_pipeline.messages.commands import OrderSpec

KEY = "AKIAFAKEKEY1234567"
ENV = {
    "ZVT_BINANCE_API_KEY": KEY,
    "ZVT_BINANCE_SECRET": 'se"cret\\value99',
    "ZVT_OKX_PASSWORD": "pass-phrase-1",
    "HATCHET_CLIENT_TOKEN": "eyJhbGciOi.fake.token",
    "REDIS_URL": "rediss://default:redis-auth-token@cache.example:6379/0",
    "ZVT_REDIS_AUTH_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:zvt-redis",
    "ZVT_KEY_PREFIX": "zvt:",
    "ZVT_SHORT_SECRET": "abc",
}


def test_secret_values_are_found_by_variable_name_and_in_urls():
    found = set(secret_values(ENV))
    assert {KEY, 'se"cret\\value99', "pass-phrase-1", "eyJhbGciOi.fake.token", "redis-auth-token"} <= found
    assert "arn:aws:secretsmanager:us-east-1:1:secret:zvt-redis" not in found  # a name, not a secret
    assert "zvt:" not in found


def test_redactor_masks_plain_and_json_escaped_spellings_but_not_short_values():
    redact = Redactor.from_env(ENV)
    assert redact(f"key={KEY}") == "key=***"
    assert redact(json.dumps({"s": 'se"cret\\value99'})) == '{"s": "***"}'
    assert redact("abc is too short to mask") == "abc is too short to mask"


def test_the_powertools_logger_output_is_redacted_everywhere():
    stream = io.StringIO()
    tools = powertools(
        ObservabilityConfig(service="zvt-redaction-test"), Redactor.from_env(ENV), stream=stream
    )
    tools.logger.info(f"connecting with {KEY}", extra={"url": ENV["REDIS_URL"]})
    try:
        raise RuntimeError(f"boom pass-phrase-1 {KEY}")
    except RuntimeError:
        tools.logger.exception("failed")
    out = stream.getvalue()
    assert KEY not in out and "pass-phrase-1" not in out and "redis-auth-token" not in out
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["message"] == "connecting with ***"
    assert records[0]["url"] == "rediss://default:***@cache.example:6379/0"
    assert "boom *** ***" in records[1]["exception"]


def test_the_filter_scrubs_records_of_other_loggers():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(Redactor([KEY])))
    log = logging.getLogger("zvt-test-foreign-library")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("request signed with %s", KEY)
        try:
            raise ValueError(KEY)
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert KEY not in stream.getvalue() and "request signed with ***" in stream.getvalue()


def test_an_error_message_is_scrubbed_before_the_runtime_reports_it():
    exc = redact_exception(
        InvalidMessage(f"symbol: unknown symbol {KEY}/USDT", field="symbol"), Redactor([KEY])
    )
    assert str(exc) == "symbol: unknown symbol ***/USDT" and isinstance(exc, InvalidMessage)


def _validation_error() -> ValidationError:
    try:
        OrderSpec.model_validate({"client_order_id": "c", "account_id": "a"})
    except ValidationError as exc:
        return exc
    raise AssertionError


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (InvalidMessage("x", field="x"), InvalidMessage),
        (ConcurrencyConflict("s", 1, 2), ConcurrencyConflict),
        (redis.ConnectionError("refused"), StoreUnavailable),
        (redis.TimeoutError("slow"), StoreUnavailable),
        (_validation_error(), InvalidMessage),
        (KeyError("bug"), KeyError),
    ],
)
def test_map_error(exc: BaseException, expected: type[BaseException]):
    mapped = map_error(exc)
    assert type(mapped) is expected
    if expected is StoreUnavailable:
        assert mapped.retryable
        assert "refused" in str(mapped) or "slow" in str(mapped)


def test_idempotency_errors_map_to_retryable_errors():
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
    )

    in_progress = map_error(IdempotencyAlreadyInProgressError("busy"))
    assert isinstance(in_progress, InvocationInProgress) and in_progress.retryable
    try:
        try:
            raise redis.ConnectionError("refused")
        except redis.ConnectionError as cause:
            raise IdempotencyPersistenceLayerError("Failed to save", cause) from cause
    except IdempotencyPersistenceLayerError as exc:
        store = map_error(exc)
    assert isinstance(store, StoreUnavailable) and "ConnectionError" in str(store)


def test_local_context_counts_down_to_its_deadline():
    ctx = LocalContext(function_name="zvt-risk", timeout_s=2)
    assert 0 < ctx.get_remaining_time_in_millis() <= 2000
    assert ctx.invoked_function_arn.endswith(":function:zvt-risk")
    assert ctx.log_group_name == "/aws/lambda/zvt-risk"
