"""Pure rebuild from envelopes, and the diff used by ``replay --verify``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import BalanceDeposited, OrderExecuted, Payload, PriceUpdated
from zvt_pipeline.messages.types import Fee, Side
from zvt_pipeline.portfolio.engine import AccountState, Position, apply_fill, deposit
from zvt_pipeline.portfolio.rebuild import account_stream, diff, rebuild

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def env(payload: Payload, stream: str = "order-o1") -> Envelope:
    return Envelope.new(payload, stream_id=stream, correlation_id="run1")


def fill(trade_id: str, side: Side, amount: str, price: str, account: str = "a1") -> OrderExecuted:
    return OrderExecuted(
        trade_id=trade_id, client_order_id="o1", account_id=account, venue="paper", symbol="BTC/USDT",
        side=side, amount=D(amount), price=D(price), fee=Fee(cost=D("0.1"), currency="USDT"), timestamp=T0,
    )  # fmt: skip


def test_rebuild_folds_fills_and_deposits_per_account_skipping_the_rest() -> None:
    f1, f2, f3 = (
        fill("1", Side.BUY, "1", "100"),
        fill("2", Side.SELL, "2", "110"),
        fill("3", Side.BUY, "1", "5", "a2"),
    )
    events = [
        env(BalanceDeposited(account_id="a1", currency="USDT", amount=D(1000)), account_stream("a1")),
        env(f1),
        env(PriceUpdated(venue="paper", symbol="BTC/USDT", price=D(1))),
        env(f2),
        env(f1),  # the same fill under another event id is still applied once
        env(f3),
    ]
    out = rebuild(events)
    expected_a1 = apply_fill(apply_fill(deposit(AccountState("a1"), "USDT", D(1000)), f1), f2)
    assert out == {"a1": expected_a1, "a2": apply_fill(AccountState("a2"), f3)}
    assert out["a1"].position("paper", "BTC/USDT").amount == D(-1)


def test_diff_is_empty_for_equal_values_written_differently() -> None:
    a = AccountState(
        "a1", {("paper", "BTC/USDT"): Position(D("1.0"), D(100))}, {"USDT": D("5.00"), "BNB": D(0)}
    )
    b = AccountState("a1", {("paper", "BTC/USDT"): Position(D(1), D("100.000"))}, {"USDT": D(5)})
    assert diff({"a1": a}, {"a1": b}) == []


def test_diff_names_every_difference() -> None:
    rebuilt = AccountState(
        "a1",
        {
            ("paper", "BTC/USDT"): Position(D(1), D(100), D(2), {"USDT": D(1)}, "t1"),
            ("paper", "ETH/USDT"): Position(),
        },
        {"USDT": D(5)},
        frozenset({"paper|t1"}),
    )
    live = AccountState(
        "a1",
        {("paper", "BTC/USDT"): Position(D(2), D(100), D(2), {}, "t2")},
        {"USDT": D(6)},
        frozenset({"paper|t2"}),
    )
    out = diff({"a1": rebuilt, "a3": AccountState("a3")}, {"a1": live, "a2": AccountState("a2")})
    assert out == [
        "a1 paper|BTC/USDT amount: rebuilt 1 != live 2",
        "a1 paper|BTC/USDT last_trade_id: rebuilt t1 != live t2",
        "a1 paper|BTC/USDT fees_paid[USDT]: rebuilt 1 != live 0",
        "a1 paper|ETH/USDT: position only in rebuilt",
        "a1 balance[USDT]: rebuilt 5 != live 6",
        "a1 applied trade paper|t1: only in rebuilt",
        "a1 applied trade paper|t2: only in live",
        "a2: only in live",
        "a3: only in rebuilt",
    ]
