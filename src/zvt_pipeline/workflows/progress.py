"""Workflow progress (``wf:<run_id>``) written by invokers that are not the Streams worker.

The Streams worker records the same fields inside its batch ``MULTI`` (``bus.commit``); Hatchet tasks call
``record_progress`` after each step. Both use the field names and values below, so ``zvt-pipeline status``,
``resume`` and ``resume_stale`` read a Hatchet run exactly like a Streams run.
"""

from __future__ import annotations

import redis

from zvt_pipeline.messages.types import utcnow
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.workflows.routing import Plan

FINISHED = frozenset({"completed", "failed"})


def plan_fields(step: str, plan: Plan) -> dict[str, str]:
    """The progress fields after ``step`` ran and ``plan`` was decided (same as the Streams worker)."""
    if plan.next_step:
        return {"step": plan.next_step, "status": "running"}
    if plan.outcome is not None:
        return {
            **{f"result_{k}": str(v) for k, v in plan.summary.items()},
            "step": step,
            "status": "completed",
            "outcome": plan.outcome,
            "completed_at": utcnow().isoformat(),
        }
    return {"step": step}


def failure_fields(step: str, error: str) -> dict[str, str]:
    """A run that failed for good (terminal error, retries exhausted)."""
    return {"step": step, "status": "failed", "outcome": "failed", "last_error": error[:500]}


def error_fields(error: BaseException, attempt: int) -> dict[str, str]:
    """A failed attempt that will be retried."""
    return {"last_error": f"{type(error).__name__}: {error}"[:500], "attempts": str(attempt)}


def record_progress(client: redis.Redis, keys: Keys, run_id: str, **fields: str) -> None:
    """Set ``fields`` on ``wf:<run_id>`` (plus ``updated_at``); a finished run leaves the ``wf:open`` index."""
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.workflow(run_id), mapping={**fields, "updated_at": utcnow().isoformat()})
    if fields.get("status") in FINISHED:
        pipe.zrem(keys.workflows_open, run_id)
    pipe.execute()


def is_finished(client: redis.Redis, keys: Keys, run_id: str) -> bool:
    raw = client.hget(keys.workflow(run_id), "status")
    return raw is not None and raw.decode() in FINISHED
