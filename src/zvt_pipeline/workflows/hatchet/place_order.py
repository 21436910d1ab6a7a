"""``trading.place_order``: the DAG ``validate_risk -> route_exchange -> execute_order -> update_positions``.

Each task runs one step through the invoke seam (in-process ``run_step`` or the step's Lambda), so a Hatchet
run appends exactly the events a Streams run appends, to the same ``order-<client_order_id>`` stream, and
keeps ``wf:<run_id>`` the same way. A run that dies half-way is finished by ``zvt-pipeline resume RUN_ID``.

- Errors: retryable ones propagate (Hatchet retries with the task's policy); terminal ones record
  ``workflow.failed`` and raise ``NonRetryableException``. A risk rejection is not an error: the run
  completes with ``order.rejected`` and the later tasks skip.
- Ambiguous submit: a retried ``execute_order`` runs the execute step again, which looks the order up by
  client order id before submitting (never a second venue order); event ids are deterministic, so the
  store keeps one copy of each event.
- Timeouts (the roadmap's numbers): validate_risk 5 s / 3 retries, route_exchange 10 s / 2, execute_order
  15 s / 3 with exponential backoff, update_positions 10 s / 3. The whole workflow is bounded by 30 s: every
  task must be scheduled within that budget, and the order's own TTL (risk's stale-intent check) stops an
  intent that waited too long before anything reaches a venue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from zvt_pipeline.errors import ConcurrencyConflict, InvalidMessage, ZvtError
from zvt_pipeline.eventstore.base import NO_STREAM
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import OrderRequested, OrderSubmitted, OrderUnknown, WorkflowFailed
from zvt_pipeline.messages.types import utcnow
from zvt_pipeline.step import emit, order_stream
from zvt_pipeline.workflows.hatchet.deps import HatchetDeps, deps_of
from zvt_pipeline.workflows.hatchet.models import PlaceOrderInput, StepOutput
from zvt_pipeline.workflows.progress import (
    error_fields,
    failure_fields,
    is_finished,
    plan_fields,
    record_progress,
)
from zvt_pipeline.workflows.submit import Workflows, start_events

if TYPE_CHECKING:
    from hatchet_sdk import Hatchet
    from hatchet_sdk.runnables.task import Task
    from hatchet_sdk.runnables.workflow import Workflow

    from zvt_pipeline.workflows.hatchet.config import HatchetConfig

NAME = "trading.place_order"
EVENT_KEY = "order:requested"
WORKFLOW_TIMEOUT = timedelta(seconds=30)
RATE_LIMIT_KEY = (
    "input.order.venue == null ? 'any:' + input.order.account_id "
    ": input.order.venue + ':' + input.order.account_id"
)
"""CEL: ``<venue>:<account>`` of the order; orders that let the router choose share ``any:<account>``."""
PROGRESS_STEP = {"risk": "risk", "route": "execute", "execute": "execute", "portfolio": "portfolio"}
"""``wf:<run_id>`` names the Streams step; routing is part of ``execute`` there."""

T = TypeVar("T")


# --- the task bodies (plain functions; the Hatchet tasks below are thin wrappers) ---------------------------


def ensure_started(deps: HatchetDeps, inp: PlaceOrderInput) -> Envelope:
    """Record the run (``wf:<run_id>`` + ``workflow.started`` + ``order.requested``) unless already recorded
    (``submit --via hatchet`` records it before starting the run; an ``order:requested`` event does not).
    Returns the stored ``order.requested`` trigger. A client order id used by another run is terminal."""
    rt = deps.runtime
    run_id, order = inp.workflow_run_id, inp.order
    stream = order_stream(order.client_order_id)
    for _ in range(3):
        events = rt.store.read(stream)
        others = {e.correlation_id for e in events if e.type == "workflow.started"} - {run_id}
        if others:
            raise InvalidMessage(
                f"client_order_id: {order.client_order_id!r} is already used by run {sorted(others)[0]}",
                field="client_order_id",
            )
        requested = next(
            (e for e in events if e.correlation_id == run_id and isinstance(e.payload, OrderRequested)), None
        )
        if requested is not None:
            break
        try:
            # NO_STREAM on a new stream: a concurrent run with the same client order id loses here.
            rt.store.append(stream, start_events(order, run_id, "hatchet"), NO_STREAM if not events else None)
        except ConcurrencyConflict:
            continue
    else:
        raise ConcurrencyConflict(stream, 0, rt.store.stream_version(stream))
    if not rt.client.exists(rt.keys.workflow(run_id)):
        fields = Workflows(rt.bus, rt.store).progress_fields(order, run_id, "hatchet")
        pipe = rt.client.pipeline(transaction=True)
        pipe.hset(rt.keys.workflow(run_id), mapping=fields)
        pipe.zadd(rt.keys.workflows_open, {run_id: utcnow().timestamp()})
        pipe.execute()
    return requested


def run_task(
    deps: HatchetDeps, run_id: str, step: str, triggers: Sequence[Envelope], attempt: int = 1
) -> StepOutput:
    """Invoke ``step`` and record progress; a terminal error also records ``workflow.failed``."""
    rt = deps.runtime
    try:
        outcome = deps.invoker.invoke(step, triggers)
    except ZvtError as exc:
        if exc.retryable:
            record_progress(rt.client, rt.keys, run_id, **error_fields(exc, attempt))
        else:
            fail_run(
                deps, run_id, PROGRESS_STEP[step], triggers[-1], exc.code, f"{type(exc).__name__}: {exc}"
            )
        raise
    except Exception as exc:  # a bug or an outage: Hatchet retries, then on_failure records the failure
        record_progress(rt.client, rt.keys, run_id, **error_fields(exc, attempt))
        raise
    plan = outcome.plan
    record_progress(rt.client, rt.keys, run_id, **plan_fields(PROGRESS_STEP[step], plan))
    return StepOutput(
        run_id=run_id,
        step=step,
        events=outcome.events,
        next_step=plan.next_step,
        triggers=list(plan.triggers),
        outcome=plan.outcome,
        summary={k: str(v) for k, v in plan.summary.items()},
    )


def fail_run(deps: HatchetDeps, run_id: str, step: str, trigger: Envelope, code: str, reason: str) -> None:
    """Record the run as failed, like the Streams worker's dead-lettering does."""
    rt = deps.runtime
    failed = WorkflowFailed(run_id=run_id, step=step, error_code=code, reason=reason[:1900])
    rt.store.append(trigger.stream_id, emit(trigger, "workflow-failed", [failed]))
    record_progress(rt.client, rt.keys, run_id, **failure_fields(step, reason))


def skip(step: str, parent: StepOutput) -> StepOutput:
    """An earlier task finished the run (rejected, failed, resting order): nothing to do."""
    return StepOutput(
        run_id=parent.run_id, step=step, outcome=parent.outcome, summary=parent.summary, noop=True
    )


def validate_risk_body(deps: HatchetDeps, inp: PlaceOrderInput, attempt: int = 1) -> StepOutput:
    trigger = ensure_started(deps, inp)
    return run_task(deps, inp.workflow_run_id, "risk", [trigger], attempt)


def next_body(deps: HatchetDeps, step: str, parent: StepOutput, attempt: int = 1) -> StepOutput:
    """route_exchange / execute_order / update_positions: run ``step`` on the parent's hand-on."""
    if parent.finished or parent.next_step != PROGRESS_STEP[step]:
        return skip(step, parent)
    return run_task(deps, parent.run_id, step, parent.triggers, attempt)


def on_failure_body(deps: HatchetDeps, inp: PlaceOrderInput, errors: dict[str, str]) -> str:
    """The run failed for good (retries exhausted, a timeout, a terminal error): record it once, and give the
    risk reservation back if the order never reached a venue (after that, the venue's answer decides)."""
    rt = deps.runtime
    run_id = inp.workflow_run_id
    if is_finished(rt.client, rt.keys, run_id):
        return "already finished"
    events = [e for e in rt.store.read(order_stream(inp.order.client_order_id)) if e.correlation_id == run_id]
    if not events:
        record_progress(rt.client, rt.keys, run_id, **failure_fields("risk", "run failed before it started"))
        return "failed before start"
    text = "; ".join(f"{k}: {v.strip().splitlines()[-1] if v.strip() else v}" for k, v in errors.items())
    step = next(iter(errors), "hatchet")
    fail_run(deps, run_id, step, events[-1], "hatchet_failure", text or "the Hatchet run failed")
    if not any(isinstance(e.payload, OrderSubmitted | OrderUnknown) for e in events):
        from zvt_pipeline.risk.reservations import Reservations

        Reservations(rt.client, rt.keys).release_all(inp.order.client_order_id, "workflow.failed")
    return "recorded failure"


def guarded(fn: Callable[[], T]) -> T:
    """Terminal errors become ``NonRetryableException`` (Hatchet stops retrying); the rest propagate."""
    try:
        return fn()
    except ZvtError as exc:
        if exc.retryable:
            raise
        from hatchet_sdk import NonRetryableException

        raise NonRetryableException(f"{exc.code}: {exc}") from exc


# --- the Hatchet workflow -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceOrderWorkflow:
    workflow: Workflow[PlaceOrderInput]
    validate_risk: Task[PlaceOrderInput, StepOutput]
    route_exchange: Task[PlaceOrderInput, StepOutput]
    execute_order: Task[PlaceOrderInput, StepOutput]
    update_positions: Task[PlaceOrderInput, StepOutput]
    on_failure: Task[PlaceOrderInput, dict[str, str]]

    @property
    def dag(self) -> tuple[Task[PlaceOrderInput, StepOutput], ...]:
        return (self.validate_risk, self.route_exchange, self.execute_order, self.update_positions)


def define(hatchet: Hatchet, config: HatchetConfig) -> PlaceOrderWorkflow:
    from hatchet_sdk import ConcurrencyExpression, ConcurrencyLimitStrategy, RateLimit, RateLimitDuration

    wf = hatchet.workflow(
        name=NAME,
        description="validate_risk -> route_exchange -> execute_order -> update_positions",
        input_validator=PlaceOrderInput,
        on_events=[EVENT_KEY],
        concurrency=ConcurrencyExpression(
            expression="input.order.account_id",
            max_runs=config.account_concurrency,
            limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
        ),
    )
    budget = WORKFLOW_TIMEOUT

    @wf.task(execution_timeout=timedelta(seconds=5), schedule_timeout=budget, retries=3)
    def validate_risk(input: PlaceOrderInput, ctx: Any) -> StepOutput:
        return guarded(lambda: validate_risk_body(deps_of(ctx), input, ctx.attempt_number))

    @wf.task(
        parents=[validate_risk], execution_timeout=timedelta(seconds=10), schedule_timeout=budget, retries=2
    )
    def route_exchange(input: PlaceOrderInput, ctx: Any) -> StepOutput:
        parent = ctx.task_output(validate_risk)
        return guarded(lambda: next_body(deps_of(ctx), "route", parent, ctx.attempt_number))

    @wf.task(
        parents=[route_exchange],
        execution_timeout=timedelta(seconds=15),
        schedule_timeout=budget,
        retries=3,
        backoff_factor=2.0,
        backoff_max_seconds=8,
        # One key per venue account, like the venue's own per-account order limit.
        rate_limits=[
            RateLimit(
                dynamic_key=RATE_LIMIT_KEY,
                units=1,
                limit=config.orders_per_second,
                duration=RateLimitDuration.SECOND,
            )
        ],
    )
    def execute_order(input: PlaceOrderInput, ctx: Any) -> StepOutput:
        parent = ctx.task_output(route_exchange)
        return guarded(lambda: next_body(deps_of(ctx), "execute", parent, ctx.attempt_number))

    @wf.task(
        parents=[execute_order], execution_timeout=timedelta(seconds=10), schedule_timeout=budget, retries=3
    )
    def update_positions(input: PlaceOrderInput, ctx: Any) -> StepOutput:
        parent = ctx.task_output(execute_order)
        return guarded(lambda: next_body(deps_of(ctx), "portfolio", parent, ctx.attempt_number))

    @wf.on_failure_task(execution_timeout=timedelta(seconds=10), retries=3)
    def on_failure(input: PlaceOrderInput, ctx: Any) -> dict[str, str]:
        return {"result": on_failure_body(deps_of(ctx), input, dict(ctx.task_run_errors))}

    return PlaceOrderWorkflow(wf, validate_risk, route_exchange, execute_order, update_positions, on_failure)
