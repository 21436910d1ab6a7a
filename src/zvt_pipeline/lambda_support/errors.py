"""How failures leave a step function.

A direct invocation reports every failure as a Lambda *function error*: the handler raises, the runtime
posts ``{"errorType": <class name>, "errorMessage": ...}``. ``errorType`` is always one of our error classes
when we know what went wrong, so ``invoke.map_function_error`` can tell retryable from terminal:

- bad input -> ``InvalidMessage`` / ``PayloadTooLarge`` (terminal; nothing was written);
- Redis unreachable, idempotency store failing -> ``StoreUnavailable`` (retryable);
- the same trigger already running elsewhere -> ``InvocationInProgress`` (retryable);
- our own errors (``ConcurrencyConflict``, ``VenueTerminal``...) pass through unchanged.

Anything else is a bug or a crash: it propagates as is, and the invoker treats an unknown ``errorType`` as
retryable, bounded by its retry limit. In a batch (SQS/Kinesis) the same mapping decides the record's fate,
which is reported in ``batchItemFailures`` instead of failing the whole invocation.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from pydantic import ValidationError

from zvt_pipeline.errors import RetryableError, StoreUnavailable, ZvtError
from zvt_pipeline.messages.codec import first_error


class InvocationInProgress(RetryableError):
    """Another invocation is running the same trigger(s) right now (powertools idempotency lock)."""

    code = "invocation_in_progress"


def map_error(exc: BaseException) -> BaseException:
    """The exception the function should raise for ``exc`` (see the module docstring)."""
    if isinstance(exc, ZvtError):
        return exc
    if isinstance(exc, ValidationError):
        return first_error(exc)
    if isinstance(exc, redis.RedisError):
        return StoreUnavailable(f"redis: {type(exc).__name__}: {exc}")
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyInconsistentStateError,
        IdempotencyPersistenceLayerError,
    )

    # InconsistentState: the lock record changed under us (a race with another invocation).
    if isinstance(exc, IdempotencyAlreadyInProgressError | IdempotencyInconsistentStateError):
        return InvocationInProgress("the same trigger is being processed by another invocation; retry later")
    if isinstance(exc, IdempotencyPersistenceLayerError):
        cause = exc.__cause__ or exc.__context__
        return StoreUnavailable(f"idempotency store: {type(cause or exc).__name__}: {cause or exc}")
    return exc


def redact_exception(exc: BaseException, redact: Callable[[str], str]) -> BaseException:
    """Scrub secrets from the message the runtime will report (``errorMessage`` and its log line)."""
    text = str(exc)
    clean = redact(text)
    if clean != text:
        exc.args = (clean,)
    return exc


def error_fields(exc: BaseException) -> dict[str, object]:
    """What a log line says about a failure."""
    fields: dict[str, object] = {"error_type": type(exc).__name__, "error": str(exc)[:1000]}
    if isinstance(exc, ZvtError):
        fields["retryable"] = exc.retryable
        fields["code"] = exc.code
    field = getattr(exc, "field", None)
    if field:
        fields["field"] = field
    return fields
