"""The invoke seam: how a Hatchet task runs a step function — in this process, or as an AWS Lambda.

Both return the same ``StepOutcome`` (events appended + the hand-on plan) and raise only our error classes:
``RetryableError`` (the task should be retried) or ``TerminalError`` (it must not be). Which one is used is
configuration (``ZVT_INVOKER``), never a code edit.

Step names: ``risk``, ``execute``, ``portfolio`` (the three step functions, through ``run_step``), and
``route``: the routing half of the execute step on its own, for the ``route_exchange`` task of the Hatchet DAG
(``order.validated`` -> ``order.routed``). The Streams path runs routing inside ``execute``; a Hatchet run
that died after ``route`` is finished by ``resume``, which hands the stored ``order.routed`` to ``execute``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from zvt_pipeline.errors import (
    ConfigError,
    InvalidMessage,
    RetryableError,
    TerminalError,
    ZvtError,
)
from zvt_pipeline.eventstore.base import EventStore
from zvt_pipeline.messages import codec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import OrderRouted, Payload, WorkflowCompleted
from zvt_pipeline.step import emit
from zvt_pipeline.workflows.routing import Plan, plan_next, portfolio_completion
from zvt_pipeline.workflows.run_step import StepOutcome, run_step

if TYPE_CHECKING:
    from zvt_pipeline.config import Settings
    from zvt_pipeline.runtime import Runtime

STEP_NAMES = ("risk", "route", "execute", "portfolio")


class Router(Protocol):
    """What ``route`` needs from the execute step."""

    def route(self, trigger: Envelope) -> list[Payload]: ...


# --- plans, shared by both invokers --------------------------------------------------------------------


def plan_route(outputs: Sequence[Envelope]) -> Plan:
    """After routing: hand the ``order.routed`` event to execute, or finish (no venue could take it)."""
    routed = [e for e in outputs if isinstance(e.payload, OrderRouted)]
    if routed:
        return Plan("execute", (routed[-1],))
    return plan_next("execute", outputs)


def plan_of(step: str, triggers: Sequence[Envelope], events: Sequence[Envelope], completes: bool) -> Plan:
    """Recompute the plan from the events a step appended (what a remote ``run_step`` decided)."""
    own = [e for e in events if not isinstance(e.payload, WorkflowCompleted)]
    if step == "route":
        return plan_route(own)
    if step == "portfolio":
        return portfolio_completion(triggers) if completes else Plan()
    return plan_next(step, own)


def run_route(router: Router, store: EventStore, trigger: Envelope) -> StepOutcome:
    """``run_step`` for the routing half: route, finish the run if nothing was routed, append.

    Returns the events as stored: a retried ``route`` whose first attempt was appended gets the first
    decision back (event ids are deterministic), never a second, different venue choice."""
    if trigger.type != "order.validated":
        raise InvalidMessage(f"type: route takes order.validated, not {trigger.type!r}", field="type")
    events = emit(trigger, "route", router.route(trigger))
    plan = plan_route(events)
    completion = plan.completion(trigger.correlation_id)
    if completion is not None:
        events += emit(trigger, "workflow", [completion])
    if not events:
        raise TerminalError("route produced no events")
    store.append(trigger.stream_id, events)
    stored = {e.event_id: e for e in store.read(trigger.stream_id)}
    events = [stored.get(e.event_id, e) for e in events]
    return StepOutcome(events, plan_route(events) if completion is None else plan)


# --- invokers ------------------------------------------------------------------------------------------


class Invoker(ABC):
    """Runs one step on its triggers and returns what was appended plus the hand-on."""

    kind: str

    @abstractmethod
    def invoke(self, step: str, triggers: Sequence[Envelope], *, completes: bool = True) -> StepOutcome: ...


class InProcessInvoker(Invoker):
    """The default: run the step in this process, through ``run_step`` (the Streams worker's code path)."""

    kind = "inprocess"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def invoke(self, step: str, triggers: Sequence[Envelope], *, completes: bool = True) -> StepOutcome:
        if step == "route":
            if len(triggers) != 1:
                raise InvalidMessage("triggers: route takes exactly one order.validated", field="triggers")
            router: Any = self.runtime.step("execute")
            return run_route(router, self.runtime.store, triggers[0])
        return run_step(self.runtime.step(step), self.runtime.store, triggers, completes=completes)


class RemoteRetryable(RetryableError):
    """A step function raised a retryable error in Lambda (or Lambda itself failed transiently)."""

    def __init__(self, message: str, *, error_type: str, code: str = "remote_retryable") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.code = code


class RemoteTerminal(TerminalError):
    """A step function raised a terminal error in Lambda (or the invocation can never succeed)."""

    def __init__(self, message: str, *, error_type: str, code: str = "remote_terminal") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.code = code


def _error_classes() -> dict[str, type[ZvtError]]:
    """Every error class defined in our code base, by class name (the Lambda ``errorType``)."""
    found: dict[str, type[ZvtError]] = {}
    todo: list[type[ZvtError]] = [ZvtError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def map_function_error(error: Mapping[str, Any], function_error: str) -> ZvtError:
    """Map a Lambda function error to ours.

    ``errorType`` names the exception class the handler raised. One of our classes keeps its own
    ``retryable`` flag and ``code``. Anything else — a crash, a timeout (``Sandbox.Timedout``), an out-of-memory
    exit — is treated like an unknown exception on the Streams path: retryable, so the task's retry limit
    bounds it."""
    error_type = str(error.get("errorType") or function_error)
    message = str(error.get("errorMessage") or error_type)[:1000]
    cls = _error_classes().get(error_type)
    if cls is None:
        return RemoteRetryable(f"{error_type}: {message}", error_type=error_type)
    if cls.retryable:
        return RemoteRetryable(message, error_type=error_type, code=cls.code)
    return RemoteTerminal(message, error_type=error_type, code=cls.code)


# boto3 ``ClientError`` codes of ``lambda.invoke`` that a retry can fix (throttling, service hiccups).
RETRYABLE_INVOKE_ERRORS = frozenset(
    {
        "TooManyRequestsException",
        "ServiceException",
        "ResourceNotReadyException",
        "ResourceConflictException",
        "EC2ThrottledException",
        "ENILimitReachedException",
        "SubnetIPAddressLimitReachedException",
        "ThrottlingException",
    }
)


class LambdaInvoker(Invoker):
    """Invoke the step's Lambda synchronously (``RequestResponse``) with the trigger envelopes.

    Payload ``{"step", "triggers": [envelope JSON], "completes"}``; the handler runs ``run_step`` (it appends
    to the event store itself) and answers ``{"events": [envelope JSON]}``. ``function_names`` maps a step
    name to its function name or ARN; ``route`` uses the execute function unless named separately."""

    kind = "lambda"

    def __init__(self, client: Any, function_names: Mapping[str, str]) -> None:
        self.client = client
        self.function_names = dict(function_names)

    @classmethod
    def from_settings(cls, settings: Settings, client: Any | None = None) -> LambdaInvoker:
        if client is None:
            import boto3

            client = boto3.client(
                "lambda", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
            )
        return cls(client, lambda_function_names(settings))

    def function_for(self, step: str) -> str:
        name = self.function_names.get(step) or (
            self.function_names.get("execute") if step == "route" else None
        )
        if not name:
            raise ConfigError(f"no Lambda function configured for step {step!r}")
        return name

    def payload(self, step: str, triggers: Sequence[Envelope], completes: bool) -> bytes:
        return json.dumps(
            {"step": step, "triggers": [codec.to_dict(t) for t in triggers], "completes": completes}
        ).encode()

    def invoke(self, step: str, triggers: Sequence[Envelope], *, completes: bool = True) -> StepOutcome:
        if step not in STEP_NAMES:
            raise InvalidMessage(f"step: unknown step {step!r} ({', '.join(STEP_NAMES)})", field="step")
        from botocore.exceptions import BotoCoreError, ClientError

        function = self.function_for(step)
        try:
            response = self.client.invoke(
                FunctionName=function,
                InvocationType="RequestResponse",
                Payload=self.payload(step, triggers, completes),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            text = f"lambda invoke {function}: {code}: {exc}"
            if code in RETRYABLE_INVOKE_ERRORS:
                raise RemoteRetryable(text, error_type=code) from exc
            raise RemoteTerminal(text, error_type=code) from exc
        except BotoCoreError as exc:  # connection reset, endpoint timeout: nothing known to have run
            raise RemoteRetryable(f"lambda invoke {function}: {exc}", error_type=type(exc).__name__) from exc
        body = self._body(response, function)
        if response.get("FunctionError"):
            raise map_function_error(body if isinstance(body, dict) else {}, str(response["FunctionError"]))
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise RemoteTerminal(
                f"lambda {function}: answer has no 'events' list", error_type="InvalidResponse"
            )
        events = [codec.from_dict(e) for e in body["events"]]
        return StepOutcome(events, plan_of(step, triggers, events, completes))

    @staticmethod
    def _body(response: Mapping[str, Any], function: str) -> Any:
        stream = response.get("Payload")
        raw = stream.read() if stream is not None else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise RemoteTerminal(
                f"lambda {function}: answer is not JSON: {raw[:200]!r}", error_type="InvalidResponse"
            ) from None


def lambda_function_names(settings: Settings) -> dict[str, str]:
    names = {
        "risk": settings.risk_function_name,
        "execute": settings.execute_function_name,
        "portfolio": settings.portfolio_function_name,
    }
    return {k: v for k, v in names.items() if v}


def create_invoker(runtime: Runtime, lambda_client: Any | None = None) -> Invoker:
    """The invoker ``ZVT_INVOKER`` selects (``inprocess`` by default)."""
    if runtime.settings.invoker == "lambda":
        return LambdaInvoker.from_settings(runtime.settings, lambda_client)
    return InProcessInvoker(runtime)
