"""AWS Lambda handler of the risk step: ``order.requested`` -> ``order.validated`` | ``order.rejected``.

Input: the invoke seam's request ``{"step", "triggers", "completes"}``, one bare envelope, or an SQS /
Kinesis batch. Output: ``{"events": [envelope JSON...]}`` (a batch adds ``batchItemFailures``).
Bad input raises ``InvalidMessage`` naming the field (a function error with errorType InvalidMessage) and
writes nothing. Machinery and contract: ``zvt_pipeline.lambda_support`` (function, requests, errors).
It must not import ccxt or hatchet_sdk (cold start): the risk step needs neither.
"""

from __future__ import annotations

import os
from typing import Any

from zvt_pipeline.lambda_support import ObservabilityConfig, Redactor, StepFunction, powertools

STEP = "risk"

# Once per execution environment (cold start). The runtime (Redis client, event store, markets, the step
# itself) is built by the first invocation and kept; ``reset()`` makes the next invocation a cold start.
tools = powertools(ObservabilityConfig.from_env(STEP, os.environ), Redactor.from_env(os.environ))
function = StepFunction(STEP, tools)
logger, metrics, tracer = tools.logger, tools.metrics, tools.tracer


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    # dependencies (first call only) -> parse (bad input raises before anything is written) -> run_step,
    # idempotent by trigger event id -> {"events": [...]}; failures raised as our error classes (errorType)
    return function.handle(event, context)


def reset() -> None:
    """Forget the cold-start dependencies (tests; the environment is read again on the next call)."""
    function.reset()
