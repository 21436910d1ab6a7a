"""Run one step on its trigger(s) and record the result: the one code path every invoker calls.

``run_step`` = step.handle for each trigger -> decide the hand-on (``routing``) -> add ``workflow.completed``
when the run is finished -> append everything to the event store (idempotent by event id). The Streams
worker, the Hatchet tasks (in-process) and the Lambda handlers all call it, so all three write the same
events for the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.eventstore.base import EventStore
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.step import Step, emit
from zvt_pipeline.workflows.routing import Plan, plan_next, portfolio_completion


@dataclass(frozen=True)
class StepOutcome:
    events: list[Envelope]
    """Everything appended for this call (the step's events and, when finished, ``workflow.completed``)."""
    plan: Plan


def run_step(
    step: Step,
    store: EventStore,
    triggers: Sequence[Envelope],
    *,
    completes: bool = True,
) -> StepOutcome:
    if not triggers:
        raise InvalidMessage("triggers: nothing to run", field="triggers")
    run_id = triggers[-1].correlation_id
    events: list[Envelope] = []
    for trigger in triggers:
        events += step.handle(trigger)
    if step.name == "portfolio":
        plan = portfolio_completion(triggers) if completes else Plan()
    else:
        plan = plan_next(step.name, events)
    completion = plan.completion(run_id)
    if completion is not None:
        events += emit(triggers[-1], "workflow", [completion])
    if events:
        store.append(triggers[-1].stream_id, events)
    return StepOutcome(events, plan)
