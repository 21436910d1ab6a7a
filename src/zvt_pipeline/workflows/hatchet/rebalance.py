"""``portfolio.rebalance``: plan the orders (pure planner), run them as child ``trading.place_order`` runs —
sells first, then buys — and record ``portfolio.rebalanced`` with the achieved vs. target weights.

Compensation: if a child fails or does not finish in time, the children still open are canceled and the
rebalance is recorded as ``failed`` (the fills that did happen stay booked: they are real).
Child runs get deterministic run ids and client order ids (from the rebalance run id), so a retried
``place_orders`` task starts no second order: the child finds its stream and continues it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.envelope import Envelope, deterministic_event_id
from zvt_pipeline.messages.events import PortfolioRebalanced
from zvt_pipeline.messages.types import OrderType, TimeInForce
from zvt_pipeline.portfolio.store import PortfolioStore
from zvt_pipeline.workflows.hatchet.deps import HatchetDeps, deps_of
from zvt_pipeline.workflows.hatchet.models import (
    RUN_ID_NAMESPACE,
    ChildResult,
    PlaceOrderInput,
    PlannedOrderModel,
    RebalanceInput,
    RebalanceOrdersOutput,
    RebalancePlanOutput,
    RebalanceResult,
)
from zvt_pipeline.workflows.hatchet.rebalance_plan import plan_rebalance, weights

if TYPE_CHECKING:
    from hatchet_sdk import Hatchet
    from hatchet_sdk.runnables.task import Task
    from hatchet_sdk.runnables.workflow import Workflow

    from zvt_pipeline.workflows.hatchet.config import HatchetConfig
    from zvt_pipeline.workflows.hatchet.place_order import PlaceOrderWorkflow

NAME = "portfolio.rebalance"
FILLED = frozenset({"filled", "partially_filled"})


class ChildRunner(Protocol):
    """Starts child place_order runs, waits for them, cancels them (compensation)."""

    async def start(self, inp: PlaceOrderInput) -> Any: ...

    async def wait(self, handle: Any, run_id: str, timeout: float) -> str:
        """The outcome of child run ``run_id`` (``filled``, ``rejected`` ...); raises on failure or timeout."""
        ...

    async def cancel(self, handle: Any) -> None: ...


class HatchetChildRunner:
    """Children as Hatchet child runs of ``trading.place_order`` (``child_key`` = client order id)."""

    def __init__(self, hatchet: Hatchet, place_order: PlaceOrderWorkflow, deps: HatchetDeps) -> None:
        self.hatchet = hatchet
        self.place_order = place_order
        self.deps = deps

    async def start(self, inp: PlaceOrderInput) -> Any:
        return await self.place_order.workflow.aio_run(
            inp, wait_for_result=False, child_key=inp.order.client_order_id
        )

    async def wait(self, handle: Any, run_id: str, timeout: float) -> str:
        await asyncio.wait_for(handle.aio_result(), timeout)
        return child_outcome(self.deps, run_id)

    async def cancel(self, handle: Any) -> None:
        await self.hatchet.runs.aio_cancel(handle.workflow_run_id)


def child_outcome(deps: HatchetDeps, run_id: str) -> str:
    """Read from ``wf:<run_id>``: the same for a Hatchet, Streams or resumed child."""
    rt = deps.runtime
    raw = rt.client.hmget(rt.keys.workflow(run_id), ["status", "outcome"])
    status, outcome = (v.decode() if v else "" for v in raw)
    if status == "failed":
        raise RuntimeError(f"child run {run_id} failed")
    return outcome or status or "unknown"


# --- task bodies -------------------------------------------------------------------------------------------


def child_ids(run_id: str, n: int) -> tuple[str, str]:
    """(client order id, child run id), deterministic per rebalance run and order index."""
    coid = f"rb-{run_id[:24]}-{n}"
    return coid, uuid.uuid5(RUN_ID_NAMESPACE, f"{run_id}/{n}").hex


def plan_body(deps: HatchetDeps, inp: RebalanceInput) -> RebalancePlanOutput:
    rt = deps.runtime
    store = PortfolioStore(rt.client, rt.keys)
    state = store.load(inp.account_id)
    holdings = {sym: pos.amount for (venue, sym), pos in state.positions.items() if venue == inp.venue}
    marks = {sym: price for (venue, sym), price in store.marks().items() if venue == inp.venue}
    cash = state.balances.get(inp.quote_currency, Decimal(0))
    plan = plan_rebalance(dict(inp.targets), holdings, marks, cash, rt.markets)
    now = deps.clock()
    orders = []
    for n, po in enumerate(plan.orders):
        coid, child_run = child_ids(inp.run_id, n)
        spec = OrderSpec(
            client_order_id=coid,
            account_id=inp.account_id,
            symbol=po.symbol,
            side=po.side,
            type=OrderType.LIMIT,
            amount=po.amount,
            price=po.price,
            time_in_force=TimeInForce.IOC,
            venue=inp.venue,
            created_at=now,
            ttl_seconds=max(30, int(deps.config.rebalance_child_timeout_seconds) * 2),
        )
        orders.append(PlannedOrderModel(order=spec, run_id=child_run, phase=po.side.value))
    return RebalancePlanOutput(run_id=inp.run_id, equity=plan.equity, orders=orders, notes=list(plan.notes))


async def run_phase(
    runner: ChildRunner, orders: Sequence[PlannedOrderModel], timeout: float
) -> list[ChildResult]:
    """Start every order of one phase, wait for all; on any failure cancel the ones still open and raise."""
    handles = [(o, await runner.start(PlaceOrderInput(order=o.order, run_id=o.run_id))) for o in orders]
    results: list[ChildResult] = []
    pending = dict(enumerate(handles))
    try:
        for n, (o, h) in enumerate(handles):
            outcome = await runner.wait(h, o.run_id, timeout)
            pending.pop(n)
            results.append(
                ChildResult(run_id=o.run_id, client_order_id=o.order.client_order_id, outcome=outcome)
            )
    except BaseException:
        for _, h in pending.values():
            with contextlib.suppress(Exception):  # best effort: the child's own timeout bounds it
                await runner.cancel(h)
        raise
    return results


def record_rebalanced(
    deps: HatchetDeps, inp: RebalanceInput, children: Sequence[ChildResult], failed: bool = False
) -> RebalanceResult:
    rt = deps.runtime
    store = PortfolioStore(rt.client, rt.keys)
    state = store.load(inp.account_id)
    holdings = {sym: pos.amount for (venue, sym), pos in state.positions.items() if venue == inp.venue}
    marks = {sym: price for (venue, sym), price in store.marks().items() if venue == inp.venue}
    achieved = weights(holdings, marks, state.balances.get(inp.quote_currency, Decimal(0)))
    filled = [c for c in children if c.outcome in FILLED]
    status = "failed" if failed or (children and not filled) else "completed"
    if not failed and children and len(filled) < len(children):
        status = "partial"
    targets = {s: Decimal(w) for s, w in inp.targets.items()}
    payload = PortfolioRebalanced(
        account_id=inp.account_id,
        targets=targets,
        achieved={s: achieved.get(s, Decimal(0)) for s in sorted(set(targets) | set(achieved))},
        orders=tuple(c.client_order_id for c in children),
        status=status,
    )
    stream = f"account-{inp.account_id}"
    rt.store.append(
        stream,
        [
            Envelope.new(
                payload,
                stream_id=stream,
                correlation_id=inp.run_id,
                event_id=deterministic_event_id(inp.run_id, "rebalance", 0),
            )
        ],
    )
    return RebalanceResult(
        run_id=inp.run_id,
        status=payload.status,
        targets=dict(payload.targets),
        achieved=dict(payload.achieved),
        orders=list(payload.orders),
    )


async def orders_body(
    deps: HatchetDeps, runner: ChildRunner, inp: RebalanceInput, plan: RebalancePlanOutput
) -> RebalanceOrdersOutput:
    timeout = deps.config.rebalance_child_timeout_seconds
    results: list[ChildResult] = []
    try:
        for phase in ("sell", "buy"):  # sells first: their proceeds pay for the buys
            results += await run_phase(runner, [o for o in plan.orders if o.phase == phase], timeout)
    except Exception:
        await asyncio.to_thread(record_rebalanced, deps, inp, results, True)
        raise
    return RebalanceOrdersOutput(run_id=inp.run_id, children=results)


# --- the Hatchet workflow -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RebalanceWorkflow:
    workflow: Workflow[RebalanceInput]
    plan_orders: Task[RebalanceInput, RebalancePlanOutput]
    place_orders: Task[RebalanceInput, RebalanceOrdersOutput]
    record_result: Task[RebalanceInput, RebalanceResult]


def define(hatchet: Hatchet, config: HatchetConfig, place_order: PlaceOrderWorkflow) -> RebalanceWorkflow:
    from zvt_pipeline.workflows.hatchet.place_order import guarded

    wf = hatchet.workflow(name=NAME, input_validator=RebalanceInput)
    children_budget = timedelta(seconds=2 * config.rebalance_child_timeout_seconds + 30)

    @wf.task(execution_timeout=timedelta(seconds=10), retries=2)
    def plan_orders(input: RebalanceInput, ctx: Any) -> RebalancePlanOutput:
        return guarded(lambda: plan_body(deps_of(ctx), input))

    @wf.task(parents=[plan_orders], execution_timeout=children_budget, retries=1)
    async def place_orders(input: RebalanceInput, ctx: Any) -> RebalanceOrdersOutput:
        deps = deps_of(ctx)
        runner = deps.children or HatchetChildRunner(hatchet, place_order, deps)
        return await orders_body(deps, runner, input, ctx.task_output(plan_orders))

    @wf.task(parents=[place_orders], execution_timeout=timedelta(seconds=10), retries=2)
    def record_result(input: RebalanceInput, ctx: Any) -> RebalanceResult:
        children = ctx.task_output(place_orders).children
        return guarded(lambda: record_rebalanced(deps_of(ctx), input, children))

    return RebalanceWorkflow(wf, plan_orders, place_orders, record_result)
