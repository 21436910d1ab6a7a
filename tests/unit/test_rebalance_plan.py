"""The pure rebalance planner: rounding, min notional, sells before buys, insufficient cash."""

from __future__ import annotations

from decimal import Decimal

import pytest

from zvt_pipeline.markets import load_markets_file
from zvt_pipeline.messages.types import Side
from zvt_pipeline.workflows.hatchet.rebalance_plan import plan_rebalance, weights

D = Decimal
MARKETS = load_markets_file()
MARKS = {"BTC/USDT": D("60000"), "ETH/USDT": D("3000"), "SOL/USDT": D("150")}


def test_from_cash_buys_each_target_rounded_down_to_the_amount_step() -> None:
    plan = plan_rebalance({"BTC/USDT": D("0.5"), "ETH/USDT": D("0.3")}, {}, MARKS, D("10000"), MARKETS)
    assert plan.equity == D("10000") and not plan.sells
    by = {o.symbol: o for o in plan.buys}
    for symbol, weight in (("BTC/USDT", D("0.5")), ("ETH/USDT", D("0.3"))):
        o, m = by[symbol], MARKETS[symbol]
        assert o.side is Side.BUY and m.amount_ok(o.amount) and m.price_ok(o.price)
        assert o.amount <= weight * D("10000") / MARKS[symbol]  # never more than asked
        assert weight * D("10000") / MARKS[symbol] - o.amount < m.amount_step  # by less than one step
        assert MARKS[symbol] < o.price <= MARKS[symbol] * D("1.01")


def test_sells_come_first_and_fund_the_buys() -> None:
    holdings = {"BTC/USDT": D("0.2")}  # 12000 of 12000 equity in BTC
    plan = plan_rebalance({"ETH/USDT": D("0.5"), "BTC/USDT": D("0.5")}, holdings, MARKS, D("0"), MARKETS)
    assert [o.side for o in plan.orders] == [Side.SELL, Side.BUY]
    sell, buy = plan.orders
    assert sell.symbol == "BTC/USDT" and sell.amount == D("0.1")
    cost = buy.amount * buy.price * (1 + MARKETS["ETH/USDT"].taker)
    assert cost <= sell.amount * sell.price * (1 - MARKETS["BTC/USDT"].taker)


def test_a_symbol_without_target_is_sold_entirely() -> None:
    plan = plan_rebalance({}, {"SOL/USDT": D("3.5")}, MARKS, D("100"), MARKETS)
    assert [(o.symbol, o.side, o.amount) for o in plan.orders] == [("SOL/USDT", Side.SELL, D("3.5"))]


def test_orders_below_min_notional_are_dropped_with_a_note() -> None:
    cost_min = MARKETS["BTC/USDT"].limits.cost_min
    assert cost_min is not None
    cash = cost_min * 2  # 1 % of this is far below the minimum
    plan = plan_rebalance({"BTC/USDT": D("0.01")}, {}, MARKS, cash, MARKETS)
    assert not plan.orders
    assert any("BTC/USDT: buy skipped" in n for n in plan.notes)


def test_insufficient_cash_scales_all_buys_down_together() -> None:
    # Fully invested targets: fees and slippage headroom cannot be paid, so buys are capped.
    plan = plan_rebalance({"BTC/USDT": D("0.6"), "ETH/USDT": D("0.4")}, {}, MARKS, D("50000"), MARKETS)
    spend = sum((o.amount * o.price * (1 + MARKETS[o.symbol].taker) for o in plan.buys), D(0))
    assert spend <= D("50000")
    assert any("capped by cash" in n for n in plan.notes)
    assert {o.symbol for o in plan.buys} == {"BTC/USDT", "ETH/USDT"}


def test_no_mark_leaves_the_symbol_alone() -> None:
    plan = plan_rebalance({"DOGE/USDT": D("0.5")}, {}, MARKS, D("1000"), MARKETS)
    assert not plan.orders and any("DOGE/USDT" in n for n in plan.notes)


def test_weights_and_bad_targets() -> None:
    assert weights({"BTC/USDT": D("0.1")}, MARKS, D("4000")) == {"BTC/USDT": D("0.6")}
    with pytest.raises(ValueError, match="sum"):
        plan_rebalance({"BTC/USDT": D("0.7"), "ETH/USDT": D("0.4")}, {}, MARKS, D("1"), MARKETS)


def test_already_on_target_plans_nothing() -> None:
    plan = plan_rebalance({"BTC/USDT": D("0.5")}, {"BTC/USDT": D("0.1")}, MARKS, D("6000"), MARKETS)
    assert plan.orders == ()
