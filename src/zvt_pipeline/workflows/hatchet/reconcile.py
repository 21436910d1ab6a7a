"""``trading.reconcile`` (cron): compare what each venue says about our orders with the event store.

For every order the store saw routed to a venue: the venue's order (looked up by client order id) and its
fills vs. the ``order.submitted`` / ``order.executed`` events. A mismatch
1. halts the account (``trading_state.changed``) and raises ``alert.triggered`` (critical);
2. waits durably for the operator's ``reconcile:approved`` event (payload ``{"reconcile_id", "approved"}``);
3. only then books the correcting events: the venue's own fills missing from the store, as
   ``order.executed`` with the venue's trade ids, applied by the portfolio step. Nothing is invented: an order
   the venue does not know, or fills the venue does not report, are left for the operator (alert only).
The account stays HALTED until the operator resumes it (``zvt-pipeline resume --account``).

Scanning: the whole event store once per run (``iter_all``), fine for thousands of orders; a larger
deployment passes ``client_order_ids`` or narrows ``accounts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from zvt_pipeline.execution.venues.base import Venue, VenueOrder
from zvt_pipeline.messages.envelope import Envelope, deterministic_event_id
from zvt_pipeline.messages.events import (
    AlertTriggered,
    OrderExecuted,
    OrderRouted,
    OrderSubmitted,
    TradingStateChanged,
)
from zvt_pipeline.messages.types import TradingState
from zvt_pipeline.risk.snapshot import set_trading_state
from zvt_pipeline.step import order_stream
from zvt_pipeline.workflows.hatchet.deps import HatchetDeps, deps_of
from zvt_pipeline.workflows.hatchet.models import (
    ReconcileApproval,
    ReconcileFinding,
    ReconcileOutput,
    ReconcileReport,
    ScheduledInput,
)

if TYPE_CHECKING:
    from hatchet_sdk import Hatchet
    from hatchet_sdk.runnables.task import Task
    from hatchet_sdk.runnables.workflow import Workflow

    from zvt_pipeline.workflows.hatchet.config import HatchetConfig

NAME = "trading.reconcile"
APPROVAL_EVENT = "reconcile:approved"


@dataclass(frozen=True)
class OrderRecord:
    """One order as the event store knows it."""

    routed: Envelope
    submitted: bool
    trade_ids: frozenset[str]

    @property
    def payload(self) -> OrderRouted:
        assert isinstance(self.routed.payload, OrderRouted)
        return self.routed.payload


def compare(record: OrderRecord, venue_order: VenueOrder | None, venue: str) -> ReconcileFinding | None:
    """What differs between the store's view of one order and the venue's. Pure."""
    order = record.payload.order
    base = {"account_id": order.account_id, "venue": venue, "client_order_id": order.client_order_id}
    if venue_order is None:
        if record.submitted or record.trade_ids:
            return ReconcileFinding(**base, kind="unknown_order", detail="the venue does not know this order")
        return None
    venue_trades = {t.trade_id for t in venue_order.trades}
    missing = sorted(venue_trades - record.trade_ids)
    if missing:
        return ReconcileFinding(
            **base,
            kind="missing_fills",
            detail=f"{len(missing)} fill(s) at the venue are not in the event store",
            missing_trade_ids=missing,
        )
    extra = sorted(record.trade_ids - venue_trades)
    if extra:
        return ReconcileFinding(
            **base, kind="extra_fills", detail=f"fills not reported by the venue: {extra}"
        )
    if not record.submitted:
        return ReconcileFinding(
            **base,
            kind="status",
            detail=f"the venue has the order ({venue_order.status}), the store no submit",
        )
    return None


def order_records(deps: HatchetDeps, inp: ScheduledInput) -> list[OrderRecord]:
    store = deps.runtime.store
    routed: dict[str, Envelope] = {}
    for e in store.iter_all():
        if isinstance(e.payload, OrderRouted):
            o = e.payload.order
            if inp.accounts and o.account_id not in inp.accounts:
                continue
            routed[o.client_order_id] = e
    records = []
    for coid, env in routed.items():
        events = [e for e in store.read(order_stream(coid)) if e.correlation_id == env.correlation_id]
        records.append(
            OrderRecord(
                routed=env,
                submitted=any(isinstance(e.payload, OrderSubmitted) for e in events),
                trade_ids=frozenset(
                    e.payload.trade_id for e in events if isinstance(e.payload, OrderExecuted)
                ),
            )
        )
    return records


def detect_body(
    deps: HatchetDeps, venues: Mapping[str, Venue], inp: ScheduledInput, reconcile_id: str
) -> ReconcileReport:
    findings = []
    records = order_records(deps, inp)
    for record in records:
        routed = record.payload
        venue = venues.get(routed.venue)
        if venue is None:
            continue
        finding = compare(
            record,
            venue.fetch_order_by_client_id(routed.order.symbol, routed.order.client_order_id),
            venue.id,
        )
        if finding is not None:
            findings.append(finding)
    report = ReconcileReport(reconcile_id=reconcile_id, checked_orders=len(records), findings=findings)
    if report.mismatch:
        halt(deps, report)
    return report


def halt(deps: HatchetDeps, report: ReconcileReport) -> None:
    """Halt every account with a finding, and raise one critical alert per account."""
    rt = deps.runtime
    for account in sorted({f.account_id for f in report.findings}):
        mine = [f for f in report.findings if f.account_id == account]
        stream = f"account-{account}"
        payloads = [
            TradingStateChanged(
                state=TradingState.HALTED,
                account_id=account,
                reason=f"reconcile {report.reconcile_id}: {len(mine)} mismatch(es) with the venue",
            ),
            AlertTriggered(
                severity="critical",
                source=NAME,
                message=f"account {account} halted: venue and event store disagree; approve with event "
                f'{APPROVAL_EVENT} {{"reconcile_id": "{report.reconcile_id}"}}',
                account_id=account,
                details={f.client_order_id: f"{f.kind}: {f.detail}"[:500] for f in mine},
            ),
        ]
        rt.store.append(
            stream,
            [
                Envelope.new(
                    p,
                    stream_id=stream,
                    correlation_id=report.reconcile_id,
                    event_id=deterministic_event_id(report.reconcile_id, f"halt/{account}", n),
                )
                for n, p in enumerate(payloads)
            ],
        )
        set_trading_state(rt.client, rt.keys, TradingState.HALTED, account)


def book_corrections(
    deps: HatchetDeps,
    venues: Mapping[str, Venue],
    report: ReconcileReport,
    approval: ReconcileApproval | None,
) -> ReconcileOutput:
    """After the operator approved: book the venue's missing fills (its own trade ids) and apply them."""
    if not report.mismatch:
        return ReconcileOutput(reconcile_id=report.reconcile_id, status="clean")
    if approval is None or not approval.approved or approval.reconcile_id != report.reconcile_id:
        return ReconcileOutput(reconcile_id=report.reconcile_id, status="declined")
    booked: list[str] = []
    for finding in report.findings:
        if finding.kind != "missing_fills":
            continue
        fills = _missing_fills(deps, venues[finding.venue], finding)
        if fills:
            deps.invoker.invoke("portfolio", fills, completes=False)
            booked += [f.payload.trade_id for f in fills if isinstance(f.payload, OrderExecuted)]
    return ReconcileOutput(reconcile_id=report.reconcile_id, status="corrected", booked=booked)


def _missing_fills(deps: HatchetDeps, venue: Venue, finding: ReconcileFinding) -> Sequence[Envelope]:
    store = deps.runtime.store
    stream = order_stream(finding.client_order_id)
    routed = next(e for e in reversed(store.read(stream)) if isinstance(e.payload, OrderRouted))
    assert isinstance(routed.payload, OrderRouted)
    order = routed.payload.order
    venue_order = venue.fetch_order_by_client_id(order.symbol, order.client_order_id)
    if venue_order is None:
        return []
    wanted = set(finding.missing_trade_ids)
    fills = []
    filled = sum((t.amount for t in venue_order.trades if t.trade_id not in wanted), Decimal(0))
    for t in venue_order.trades:
        if t.trade_id not in wanted:
            continue
        filled += t.amount
        fill = OrderExecuted(
            trade_id=t.trade_id,
            client_order_id=order.client_order_id,
            account_id=order.account_id,
            venue=venue.id,
            symbol=order.symbol,
            side=order.side,
            amount=t.amount,
            price=t.price,
            fee=t.fee,
            timestamp=t.timestamp,
            liquidity=t.liquidity,
            order_amount=order.amount,
            filled_total=filled,
        )
        fills.append(
            Envelope.new(
                fill,
                stream_id=stream,
                correlation_id=routed.correlation_id,
                causation_id=finding.client_order_id,
                event_id=deterministic_event_id(routed.correlation_id, f"reconcile/{t.trade_id}", 0),
            )
        )
    if fills:
        store.append(stream, fills)
    return fills


async def durable_approval(ctx: Any, reconcile_id: str, timeout: float) -> ReconcileApproval | None:
    """Wait durably (the worker may restart meanwhile) for the operator's approval, or the timeout."""
    from hatchet_sdk import SleepCondition, UserEventCondition, or_

    result = await ctx.aio_wait_for(
        f"approval:{reconcile_id}",
        or_(
            SleepCondition(timedelta(seconds=timeout), readable_data_key="timeout"),
            UserEventCondition(
                event_key=APPROVAL_EVENT,
                expression=f"input.reconcile_id == '{reconcile_id}'",
                readable_data_key="approval",
            ),
        ),
    )
    payload = _find(result, "approval")
    return ReconcileApproval.model_validate(payload) if isinstance(payload, dict) else None


def _find(data: Any, key: str) -> Any:
    """The first payload under ``key`` in the engine's nested wait result."""
    if isinstance(data, dict):
        if key in data:
            value = data[key]
            return value[0] if isinstance(value, list) and value else value
        for v in data.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class ReconcileWorkflow:
    workflow: Workflow[ScheduledInput]
    detect: Task[ScheduledInput, ReconcileReport]
    approve_and_book: Task[ScheduledInput, ReconcileOutput]


def define(hatchet: Hatchet, config: HatchetConfig) -> ReconcileWorkflow:
    import asyncio

    from zvt_pipeline.workflows.hatchet.place_order import guarded

    wf = hatchet.workflow(
        name=NAME, input_validator=ScheduledInput, on_crons=[config.reconcile_cron], concurrency=1
    )
    timeout = config.approval_timeout_hours * 3600

    @wf.task(execution_timeout=timedelta(minutes=5), retries=2)
    def detect(input: ScheduledInput, ctx: Any) -> ReconcileReport:
        deps = deps_of(ctx)
        return guarded(lambda: detect_body(deps, deps.venues(), input, f"reconcile-{ctx.workflow_run_id}"))

    @wf.durable_task(parents=[detect], execution_timeout=timedelta(seconds=timeout + 600), retries=2)
    async def approve_and_book(input: ScheduledInput, ctx: Any) -> ReconcileOutput:
        deps = deps_of(ctx)
        report = ctx.task_output(detect)
        approval = None
        if report.mismatch:
            waiter = deps.wait_for_approval or durable_approval
            approval = await waiter(ctx, report.reconcile_id, timeout)
        return await asyncio.to_thread(book_corrections, deps, deps.venues(), report, approval)

    return ReconcileWorkflow(wf, detect, approve_and_book)
