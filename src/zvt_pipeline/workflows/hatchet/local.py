"""Run the ``trading.place_order`` DAG in this process, task by task, through the SDK's ``mock_run``.

For offline use where no engine exists: tests, and ``portfolio.rebalance`` children in tests. Parent
outputs go through JSON exactly as the engine passes them, so a task sees what it would see under Hatchet.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from zvt_pipeline.workflows.hatchet.deps import HatchetDeps
from zvt_pipeline.workflows.hatchet.models import PlaceOrderInput, StepOutput
from zvt_pipeline.workflows.hatchet.place_order import PlaceOrderWorkflow


def as_parent_output(task: Any, output: Any) -> dict[str, Any]:
    """A task's output as the engine hands it to the children: its JSON."""
    return dict(json.loads(task.output_validator.dump_json(output)))


def run_place_order_locally(
    pw: PlaceOrderWorkflow, deps: HatchetDeps, inp: PlaceOrderInput, *, stop_after: str | None = None
) -> list[StepOutput]:
    """Run the DAG in order; ``stop_after`` (a task name) stops there, as if the run died next."""
    parents: dict[str, Any] = {}
    outputs: list[StepOutput] = []
    for task in pw.dag:
        out = task.mock_run(input=inp, parent_outputs=parents, lifespan=deps)
        outputs.append(out)
        parents[task.name] = as_parent_output(task, out)
        if task.name == stop_after:
            break
    return outputs


class InProcessChildRunner:
    """``ChildRunner`` that runs each child DAG in a thread of this process (no engine)."""

    def __init__(self, pw: PlaceOrderWorkflow, deps: HatchetDeps) -> None:
        self.pw = pw
        self.deps = deps
        self.canceled: list[str] = []

    async def start(self, inp: PlaceOrderInput) -> Any:
        return (
            inp,
            asyncio.ensure_future(asyncio.to_thread(run_place_order_locally, self.pw, self.deps, inp)),
        )

    async def wait(self, handle: Any, run_id: str, timeout: float) -> str:
        _, fut = handle
        outputs: list[StepOutput] = await asyncio.wait_for(asyncio.shield(fut), timeout)
        last = outputs[-1]
        return last.outcome or "unknown"

    async def cancel(self, handle: Any) -> None:
        inp, fut = handle
        fut.cancel()
        self.canceled.append(inp.order.client_order_id)
