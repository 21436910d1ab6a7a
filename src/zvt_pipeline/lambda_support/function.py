"""The machinery behind ``functions/<step>/app.py``: cold-start dependencies, parsing, running, error mapping.

One invocation:
1. dependencies (runtime, step, idempotency) are built on the first call and kept for the life of the
   execution environment (one cold start); ``reset()`` forgets them (tests, or after a config change);
2. the event is parsed (``requests.parse_event``): bad input raises ``InvalidMessage`` naming the field,
   before anything runs or is written;
3. the step runs through ``run_step`` (``run_route`` for the execute function's ``route`` requests), the one
   code path every invoker uses, wrapped in powertools idempotency keyed by the trigger event ids;
4. the answer is ``{"events": [envelope JSON...]}``; a batch adds ``batchItemFailures``.

Errors of a direct invocation are raised (a Lambda function error whose ``errorType`` is our class name,
``errors.map_error``); in a batch each failing record is reported in ``batchItemFailures`` and the others
go on (SQS retries the failed ones, and its redrive policy dead-letters a record that keeps failing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.lambda_support.errors import error_fields, map_error, redact_exception
from zvt_pipeline.lambda_support.idempotency import IdempotentRunner, idempotency_key_data
from zvt_pipeline.lambda_support.observability import Tools
from zvt_pipeline.lambda_support.requests import (
    Batch,
    InputLimits,
    Request,
    kinesis_body,
    parse_body,
    parse_event,
    sqs_body,
)
from zvt_pipeline.messages import codec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.runtime import Runtime

# The step names each function runs: the execute function also answers the seam's ``route`` requests.
FUNCTION_STEPS: dict[str, tuple[str, ...]] = {
    "risk": ("risk",),
    "execute": ("execute", "route"),
    "portfolio": ("portfolio",),
}
ROUTE_ACCEPTS = frozenset({"order.validated"})
RUN_LOG_KEYS = ("step", "source", "trigger_ids", "stream_id")
"""Log keys describing one run (set per request, dropped between the records of a batch)."""


def default_runtime() -> Runtime:
    """The runtime from the environment (``REDIS_URL``, ``ZVT_*``), read fresh: a cold start reads it once."""
    from zvt_pipeline.config import load_settings

    return Runtime.from_settings(load_settings())


@dataclass(frozen=True)
class Dependencies:
    runtime: Runtime
    limits: InputLimits
    runner: IdempotentRunner


class StepFunction:
    """One Lambda function (``risk``, ``execute`` or ``portfolio``)."""

    def __init__(
        self,
        function: str,
        tools: Tools,
        runtime_factory: Callable[[], Runtime] = default_runtime,
    ) -> None:
        if function not in FUNCTION_STEPS:
            raise ValueError(f"unknown step function {function!r} ({', '.join(FUNCTION_STEPS)})")
        self.function = function
        self.tools = tools
        self._runtime_factory = runtime_factory
        self._deps: Dependencies | None = None
        self._lock = threading.Lock()

    # --- cold start -------------------------------------------------------------------------------------

    def dependencies(self) -> Dependencies:
        """Built on first use, then reused by every invocation of this execution environment."""
        with self._lock:
            if self._deps is None:
                runtime = self._runtime_factory()
                for step in FUNCTION_STEPS[self.function]:
                    if step != "route":
                        runtime.step(step)  # build the step now: venues, markets, configs
                self._deps = Dependencies(
                    runtime=runtime,
                    limits=InputLimits(
                        max_event_bytes=runtime.settings.max_event_bytes,
                        known_symbols=frozenset(runtime.markets),
                    ),
                    runner=IdempotentRunner(self._execute, runtime.client, runtime.keys, self.function),
                )
                self.tools.logger.debug("dependencies built", extra={"function": self.function})
            return self._deps

    def reset(self) -> None:
        """Forget the dependencies: the next invocation is a cold start again."""
        with self._lock:
            deps, self._deps = self._deps, None
        if deps is not None:
            deps.runtime.client.close()  # its pooled connections; the runtime is not used any more

    # --- one invocation ---------------------------------------------------------------------------------

    def handle(self, event: Any, context: Any) -> dict[str, Any]:
        try:
            deps = self.dependencies()
            parsed = parse_event(event, deps.limits)
            if isinstance(parsed, Batch):
                return self._batch(parsed, deps, context)
            return self._run(parsed, deps, context)
        except Exception as exc:
            raise self._failed(exc) from None

    def _run(self, request: Request, deps: Dependencies, context: Any) -> dict[str, Any]:
        step = self._step_of(request, deps.runtime)
        self.tools.logger.set_correlation_id(request.run_id)
        self.tools.logger.append_keys(
            step=step,
            source=request.source,
            trigger_ids=[str(t.event_id) for t in request.triggers],
            stream_id=request.triggers[-1].stream_id,
        )  # RUN_LOG_KEYS
        key = idempotency_key_data(step, request.completes, [str(t.event_id) for t in request.triggers])
        result = deps.runner(context, key=key, step=step, request=request)
        events = result.get("events", [])
        self._count("Triggers", len(request.triggers))
        self._count("EventsEmitted", len(events))
        self.tools.logger.info(
            "step ran", extra={"events": len(events), "types": [e.get("type") for e in events]}
        )
        return result

    def _execute(self, *, key: dict[str, Any], step: str, request: Request) -> dict[str, Any]:
        """The idempotent body: run the step and append its events (``key`` only names the work)."""
        from zvt_pipeline.workflows.run_step import run_step

        runtime = self.dependencies().runtime
        with self.tools.tracer.provider.in_subsegment(f"## {step}") as subsegment:
            subsegment.put_annotation("step", step)
            subsegment.put_annotation("run_id", request.run_id)
            if step == "route":
                from zvt_pipeline.invoke import run_route

                router: Any = runtime.step("execute")
                outcome = run_route(router, runtime.store, request.triggers[0])
            else:
                outcome = run_step(
                    runtime.step(step), runtime.store, request.triggers, completes=request.completes
                )
        return {"events": [codec.to_dict(e) for e in outcome.events]}

    def _batch(self, batch: Batch, deps: Dependencies, context: Any) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

        event_type = EventType.SQS if batch.source == "sqs" else EventType.KinesisDataStreams
        body = sqs_body if batch.source == "sqs" else kinesis_body
        # All records failing is reported like some failing (each record by id), not as a function error:
        # one answer shape, and each record's own error stays in the logs. The event source retries the
        # listed records; SQS's redrive policy dead-letters one that keeps failing.
        processor = BatchProcessor(event_type=event_type, raise_on_entire_batch_failure=False)
        events: list[dict[str, Any]] = []

        def record_handler(record: Any) -> None:
            # Each record is its own run: drop the previous record's keys from the log lines.
            self.tools.logger.remove_keys(RUN_LOG_KEYS)
            try:
                request = parse_body(body(record), deps.limits, via=batch.source)
                events.extend(self._run(request, deps, context)["events"])
            except Exception as exc:
                raise self._failed(exc, record_id=_record_id(record)) from None
            finally:
                self.tools.logger.set_correlation_id(None)

        with processor(records=list(batch.event["Records"]), handler=record_handler, lambda_context=context):
            processor.process()
        failures = processor.response().get("batchItemFailures", [])
        self._count("BatchItemFailures", len(failures))
        return {"events": events, "batchItemFailures": failures}

    # --- helpers ----------------------------------------------------------------------------------------

    def _step_of(self, request: Request, runtime: Runtime) -> str:
        allowed = FUNCTION_STEPS[self.function]
        step = request.step or self.function
        if step not in allowed:
            raise InvalidMessage(
                f"step: this is the {self.function} function; it runs {', '.join(allowed)}, not {step!r}",
                field="step",
            )
        accepts = ROUTE_ACCEPTS if step == "route" else runtime.step(step).accepts
        if step == "route" and len(request.triggers) != 1:
            raise InvalidMessage("triggers: route takes exactly one order.validated", field="triggers")
        _check_types(request.triggers, accepts, step, nested=request.step is not None)
        return step

    def _failed(self, exc: BaseException, record_id: str | None = None) -> BaseException:
        error = redact_exception(map_error(exc), self.tools.redact)
        fields = error_fields(error)
        if record_id is not None:
            fields["record"] = record_id
        invalid = isinstance(error, InvalidMessage)
        self._count("InvalidInputs" if invalid else "Failures", 1)
        if invalid:
            self.tools.logger.warning("invalid input, nothing written", extra=fields)
        else:
            self.tools.logger.error("step failed", extra=fields, exc_info=error is exc)
        return error

    def _count(self, name: str, value: int) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        if value:
            self.tools.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _check_types(triggers: Sequence[Envelope], accepts: frozenset[str], step: str, *, nested: bool) -> None:
    # Checked for every trigger before the first runs: a bad second trigger must not leave the first one's
    # state changes (a reservation) behind.
    for i, trigger in enumerate(triggers):
        if trigger.type not in accepts:
            field = f"triggers.{i}.type" if nested else "type"
            takes = ", ".join(sorted(accepts))
            raise InvalidMessage(
                f"{field}: step {step!r} does not handle {trigger.type!r} (accepts {takes})", field=field
            )


def _record_id(record: Any) -> str:
    message_id = getattr(record, "message_id", None)
    if message_id:
        return str(message_id)
    kinesis = getattr(record, "kinesis", None)
    return str(getattr(kinesis, "sequence_number", "?"))
