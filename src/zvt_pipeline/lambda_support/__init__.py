"""Shared machinery of the Lambda handlers in ``functions/<step>/app.py`` (powertools-based).

- ``requests``: the accepted event shapes (seam request, bare envelope, SQS, Kinesis) -> envelopes;
- ``errors``: how failures leave a function (``errorType`` = our class name);
- ``observability``: Logger / Metrics / Tracer with secrets redacted;
- ``idempotency``: powertools idempotency on Redis, keyed by trigger event ids;
- ``function``: ``StepFunction``, cold-start dependencies and one invocation end to end.

Importing this package imports neither ccxt nor hatchet_sdk; powertools modules load on first use.
"""

from __future__ import annotations

from zvt_pipeline.lambda_support.errors import InvocationInProgress, map_error
from zvt_pipeline.lambda_support.function import FUNCTION_STEPS, Dependencies, StepFunction
from zvt_pipeline.lambda_support.observability import (
    ObservabilityConfig,
    Redactor,
    Tools,
    powertools,
)
from zvt_pipeline.lambda_support.requests import Batch, InputLimits, Request, StepRequest, parse_event

__all__ = [
    "FUNCTION_STEPS",
    "Batch",
    "Dependencies",
    "InputLimits",
    "InvocationInProgress",
    "ObservabilityConfig",
    "Redactor",
    "Request",
    "StepFunction",
    "StepRequest",
    "Tools",
    "map_error",
    "parse_event",
    "powertools",
]
