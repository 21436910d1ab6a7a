"""``portfolio.rebalance``, ``risk.monitor``, ``trading.reconcile`` and ``marketdata.ingest`` through
``mock_run`` / ``aio_mock_run`` with the real steps on a real Redis (paper venue)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
import redis

from tests.integration.hatchet.support import fund, make_deps, market_order, offline_hatchet
from zvt_pipeline.marketdata.config import SyntheticConfig
from zvt_pipeline.marketdata.synthetic import SyntheticMarketData
from zvt_pipeline.messages.types import TradingState
from zvt_pipeline.portfolio.store import PortfolioStore
from zvt_pipeline.risk.snapshot import get_trading_state
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.workflows.hatchet.deps import HatchetDeps
from zvt_pipeline.workflows.hatchet.local import (
    InProcessChildRunner,
    as_parent_output,
    run_place_order_locally,
)
from zvt_pipeline.workflows.hatchet.models import (
    PlaceOrderInput,
    RebalanceInput,
    ReconcileApproval,
    ScheduledInput,
)
from zvt_pipeline.workflows.hatchet.worker import HatchetWorkflows, build_workflows

D = Decimal


@pytest.fixture(scope="module")
def wfs() -> HatchetWorkflows:
    return build_workflows(offline_hatchet())


@pytest.fixture
def deps(redis_client: redis.Redis, keys: Keys) -> HatchetDeps:
    deps = make_deps(redis_client, keys)
    fund(deps.runtime)
    return deps


def account_events(deps: HatchetDeps, account: str = "A") -> list[Any]:
    return deps.runtime.store.read(f"account-{account}")


# --- rebalance ---------------------------------------------------------------------------------------------


class FailingChildRunner(InProcessChildRunner):
    """Children run in process; the one for ``fail_coid`` fails (its run errored at the venue)."""

    def __init__(self, *args: Any, fail_coid: str) -> None:
        super().__init__(*args)
        self.fail_coid = fail_coid

    async def wait(self, handle: Any, run_id: str, timeout: float) -> str:
        if handle[0].order.client_order_id == self.fail_coid:
            raise RuntimeError("child run failed")
        return await super().wait(handle, run_id, timeout)


def rebalance(wfs: HatchetWorkflows, deps: HatchetDeps, inp: RebalanceInput) -> Any:
    rb = wfs.rebalance
    plan = rb.plan_orders.mock_run(inp, lifespan=deps)
    placed = asyncio.run(
        rb.place_orders.aio_mock_run(
            inp, parent_outputs={rb.plan_orders.name: as_parent_output(rb.plan_orders, plan)}, lifespan=deps
        )
    )
    result = rb.record_result.mock_run(
        inp, parent_outputs={rb.place_orders.name: as_parent_output(rb.place_orders, placed)}, lifespan=deps
    )
    return plan, placed, result


def test_rebalance_reaches_the_targets_and_records_portfolio_rebalanced(
    wfs: HatchetWorkflows, deps: HatchetDeps
) -> None:
    deps.children = InProcessChildRunner(wfs.place_order, deps)
    targets = {"BTC/USDT": D("0.3"), "ETH/USDT": D("0.2")}
    plan, placed, result = rebalance(wfs, deps, RebalanceInput(account_id="A", targets=targets, run_id="rb1"))
    assert len(plan.orders) == 2 and {c.outcome for c in placed.children} == {"filled"}
    assert result.status == "completed"
    for symbol, weight in targets.items():
        assert abs(result.achieved[symbol] - weight) < D("0.01")  # slippage and fees only
    (event,) = [e for e in account_events(deps) if e.type == "portfolio.rebalanced"]
    assert event.correlation_id == "rb1" and event.payload.orders == tuple(result.orders)

    # Second rebalance: from BTC into SOL. The sell runs first and pays for the buy.
    shifted = {"SOL/USDT": D("0.3"), "ETH/USDT": D("0.2")}
    plan2, _placed2, result2 = rebalance(
        wfs, deps, RebalanceInput(account_id="A", targets=shifted, run_id="rb2")
    )
    assert next(o.phase for o in plan2.orders) == "sell" and result2.status == "completed"
    assert result2.achieved.get("BTC/USDT", D(0)) == 0
    assert abs(result2.achieved["SOL/USDT"] - D("0.3")) < D("0.01")


def test_rebalance_failure_cancels_the_open_children_and_records_failed(
    wfs: HatchetWorkflows, deps: HatchetDeps
) -> None:
    targets = {"BTC/USDT": D("0.2"), "ETH/USDT": D("0.2"), "SOL/USDT": D("0.2")}
    inp = RebalanceInput(account_id="A", targets=targets, run_id="rb3")
    plan = wfs.rebalance.plan_orders.mock_run(inp, lifespan=deps)
    first, *rest = [o.order.client_order_id for o in plan.orders]
    runner = FailingChildRunner(wfs.place_order, deps, fail_coid=first)
    deps.children = runner
    with pytest.raises(RuntimeError, match="child run failed"):
        asyncio.run(
            wfs.rebalance.place_orders.aio_mock_run(
                inp,
                parent_outputs={"plan_orders": as_parent_output(wfs.rebalance.plan_orders, plan)},
                lifespan=deps,
            )
        )
    assert runner.canceled == [first, *rest]  # compensation: every child not finished is canceled
    (event,) = [e for e in account_events(deps) if e.type == "portfolio.rebalanced"]
    assert event.payload.status == "failed"


# --- risk monitor ------------------------------------------------------------------------------------------


def test_risk_monitor_halts_on_drawdown_once(wfs: HatchetWorkflows, deps: HatchetDeps) -> None:
    rt = deps.runtime
    run_place_order_locally(
        wfs.place_order, deps, PlaceOrderInput(order=market_order("m1", amount="0.5"), run_id="run-m1")
    )
    rt.client.hset(rt.keys.equity_peaks, "A", "200000")  # equity is ~100000: 50 % below its peak
    out = wfs.risk_monitor.check.mock_run(ScheduledInput(accounts=["A"]), lifespan=deps)
    assert next(b["rule"] for b in out.breaches) == "max_drawdown"
    assert get_trading_state(rt.client, rt.keys, "A") is TradingState.HALTED
    types = [e.type for e in account_events(deps)]
    assert types[-3:] == ["risk.breached", "alert.triggered", "trading_state.changed"]
    wfs.risk_monitor.check.mock_run(ScheduledInput(accounts=["A"]), lifespan=deps)
    assert [e.type for e in account_events(deps)] == types  # persisting breach: reported once


def test_risk_monitor_reduces_on_exposure_and_tracks_the_peak(
    wfs: HatchetWorkflows, deps: HatchetDeps
) -> None:
    rt = deps.runtime
    deps.config = deps.config.model_copy(update={"max_gross_exposure": D("1000")})
    run_place_order_locally(
        wfs.place_order, deps, PlaceOrderInput(order=market_order("m2", amount="0.05"), run_id="run-m2")
    )
    out = wfs.risk_monitor.check.mock_run(ScheduledInput(), lifespan=deps)
    assert out.checked == ["A"] and [b["rule"] for b in out.breaches] == ["max_gross_exposure"]
    assert get_trading_state(rt.client, rt.keys, "A") is TradingState.REDUCING
    assert D(rt.client.hget(rt.keys.equity_peaks, "A").decode()) > D("99000")


# --- reconcile ---------------------------------------------------------------------------------------------


def _order_placed_but_not_recorded(wfs: HatchetWorkflows, deps: HatchetDeps, coid: str) -> None:
    """A worker died after the venue filled the order and before it wrote order.submitted/executed."""
    order = market_order(coid)
    run_place_order_locally(
        wfs.place_order, deps, PlaceOrderInput(order=order, run_id=f"run-{coid}"), stop_after="route_exchange"
    )
    deps.venues()["paper"].create_order(order)


def _reconcile(wfs: HatchetWorkflows, deps: HatchetDeps, approval: ReconcileApproval | None) -> Any:
    rc = wfs.reconcile
    report = rc.detect.mock_run(ScheduledInput(), lifespan=deps)

    async def waiter(ctx: Any, reconcile_id: str, timeout: float) -> ReconcileApproval | None:
        return approval.model_copy(update={"reconcile_id": reconcile_id}) if approval else None

    deps.wait_for_approval = waiter
    out = asyncio.run(
        rc.approve_and_book.aio_mock_run(
            ScheduledInput(),
            parent_outputs={rc.detect.name: as_parent_output(rc.detect, report)},
            lifespan=deps,
        )
    )
    return report, out


def test_reconcile_clean_when_store_and_venue_agree(wfs: HatchetWorkflows, deps: HatchetDeps) -> None:
    run_place_order_locally(wfs.place_order, deps, PlaceOrderInput(order=market_order("k0"), run_id="run-k0"))
    report, out = _reconcile(wfs, deps, None)
    assert report.checked_orders == 1 and not report.findings and out.status == "clean"


def test_reconcile_mismatch_halts_and_books_the_venues_fills_only_after_approval(
    wfs: HatchetWorkflows, deps: HatchetDeps
) -> None:
    rt = deps.runtime
    _order_placed_but_not_recorded(wfs, deps, "k1")
    store = PortfolioStore(rt.client, rt.keys)
    report, out = _reconcile(wfs, deps, None)  # no approval (timed out)
    (finding,) = report.findings
    assert finding.kind == "missing_fills" and finding.client_order_id == "k1"
    assert get_trading_state(rt.client, rt.keys, "A") is TradingState.HALTED
    assert [e.type for e in account_events(deps)][-2:] == ["trading_state.changed", "alert.triggered"]
    assert out.status == "declined" and not store.positions("A")  # nothing booked without approval

    report2, out2 = _reconcile(wfs, deps, ReconcileApproval(reconcile_id="x", operator="ops"))
    assert out2.status == "corrected" and out2.booked == report2.findings[0].missing_trade_ids
    (position,) = store.positions("A").values()
    assert position.amount == D("0.01")
    fills = [e for e in rt.store.read("order-k1") if e.type == "order.executed"]
    assert [f.payload.trade_id for f in fills] == out2.booked  # the venue's own trade ids, no invented fill
    assert get_trading_state(rt.client, rt.keys, "A") is TradingState.HALTED  # operator resumes trading
    report3, _ = _reconcile(wfs, deps, None)
    assert [f.kind for f in report3.findings] == ["status"]  # fills now agree; the submit was never recorded


# --- market data -------------------------------------------------------------------------------------------


def test_marketdata_ingest_writes_marks_and_books(wfs: HatchetWorkflows, deps: HatchetDeps) -> None:
    rt = deps.runtime
    deps.marketdata = SyntheticMarketData(rt.markets, SyntheticConfig(seed=7))
    rt.client.delete(rt.keys.marks)
    out = wfs.marketdata.ingest.mock_run(ScheduledInput(symbols=["ETH/USDT"]), lifespan=deps)
    assert out.ingested > 0 and out.symbols == ["ETH/USDT"]
    assert list(PortfolioStore(rt.client, rt.keys).marks()) == [("paper", "ETH/USDT")]
