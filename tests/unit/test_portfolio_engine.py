"""Accounting cases of the pure portfolio engine, one behaviour per test."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.messages.events import OrderExecuted, PositionUpdated
from zvt_pipeline.messages.types import Fee, Side
from zvt_pipeline.portfolio.engine import (
    AccountState,
    apply_fill,
    apply_fills,
    canonical,
    deposit,
    position_updated,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
_ids = iter(range(1, 10**9))


def fill(
    side: str,
    amount: str,
    price: str,
    *,
    fee: str = "0",
    fee_currency: str = "USDT",
    symbol: str = "BTC/USDT",
    venue: str = "paper",
    trade_id: str | None = None,
    account: str = "acc",
) -> OrderExecuted:
    return OrderExecuted(
        trade_id=trade_id or f"t{next(_ids)}",
        client_order_id="o1",
        account_id=account,
        venue=venue,
        symbol=symbol,
        side=Side(side),
        amount=D(amount),
        price=D(price),
        fee=Fee(cost=D(fee), currency=fee_currency),
        timestamp=T0,
    )


def run(*fills: OrderExecuted) -> AccountState:
    return apply_fills(AccountState("acc"), fills)


def test_open_long_with_quote_fee() -> None:
    s = run(fill("buy", "1", "100", fee="0.1"))
    p = s.position("paper", "BTC/USDT")
    assert (p.amount, p.avg_entry_price, p.realized_pnl) == (D(1), D(100), D("-0.1"))
    assert s.balances == {"USDT": D("-100.1")}
    assert p.fees_paid == {"USDT": D("0.1")}
    assert p.last_trade_id is not None


def test_add_to_long_moves_average_by_size() -> None:
    p = run(fill("buy", "1", "100"), fill("buy", "3", "200")).position("paper", "BTC/USDT")
    assert (p.amount, p.avg_entry_price, p.realized_pnl) == (D(4), D(175), D(0))


def test_average_is_rounded_to_18_places() -> None:
    p = run(fill("buy", "1", "100"), fill("buy", "2", "101")).position("paper", "BTC/USDT")
    assert p.avg_entry_price == D("100.666666666666666667")


def test_reduce_long_books_pnl_and_keeps_average() -> None:
    s = run(fill("buy", "2", "100"), fill("sell", "0.5", "120", fee="0.06"))
    p = s.position("paper", "BTC/USDT")
    assert (p.amount, p.avg_entry_price, p.realized_pnl) == (D("1.5"), D(100), D("9.94"))
    assert s.balances["USDT"] == D(-200) + D(60) - D("0.06")


def test_close_to_zero_resets_average_and_keeps_cumulative_pnl() -> None:
    s = run(fill("buy", "2", "100"), fill("sell", "0.5", "120"), fill("sell", "1.5", "90"))
    p = s.position("paper", "BTC/USDT")
    assert (p.amount, p.avg_entry_price, p.realized_pnl) == (D(0), D(0), D(10) - D(15))
    assert s.balances["USDT"] == D(-5)


def test_reopen_after_close_starts_a_new_average() -> None:
    p = run(fill("buy", "1", "100"), fill("sell", "1", "110"), fill("buy", "1", "50")).position(
        "paper", "BTC/USDT"
    )
    assert (p.amount, p.avg_entry_price, p.realized_pnl) == (D(1), D(50), D(10))


def test_flip_long_to_short_and_back() -> None:
    s = run(fill("buy", "1", "100"), fill("sell", "3", "110"))
    p = s.position("paper", "BTC/USDT")
    # closes 1 long at its average (100): +10, opens 2 short at the fill price
    assert (p.amount, p.avg_entry_price, p.realized_pnl) == (D(-2), D(110), D(10))
    s = apply_fill(s, fill("buy", "5", "100"))
    p = s.position("paper", "BTC/USDT")
    # closes 2 short at 110 bought back at 100: +20, opens 3 long at 100
    assert (p.amount, p.avg_entry_price, p.realized_pnl) == (D(3), D(100), D(30))
    assert s.balances["USDT"] == D(-100) + D(330) - D(500)


def test_short_gains_when_price_falls() -> None:
    p = run(fill("sell", "2", "100"), fill("sell", "2", "110"), fill("buy", "1", "90")).position(
        "paper", "BTC/USDT"
    )
    assert (p.amount, p.avg_entry_price, p.realized_pnl) == (D(-3), D(105), D(15))


def test_base_currency_fee_on_buy_reduces_the_position() -> None:
    s = run(fill("buy", "1", "100", fee="0.001", fee_currency="BTC"))
    p = s.position("paper", "BTC/USDT")
    assert p.amount == D("0.999")
    assert p.avg_entry_price == D(100)
    assert s.balances == {"USDT": D(-100)}
    assert p.fees_paid == {"BTC": D("0.001")}
    assert p.realized_pnl == D("-0.1")  # the fee, valued at the fill price


def test_base_currency_fee_on_sell_takes_more_off_the_position() -> None:
    s = run(fill("buy", "2", "100"), fill("sell", "1", "120", fee="0.001", fee_currency="BTC"))
    p = s.position("paper", "BTC/USDT")
    assert p.amount == D("0.999")
    assert s.balances == {"USDT": D(-200) + D(120)}
    # 1.001 closed at 120 against 100 = 20.02, minus the fee worth 0.12
    assert p.realized_pnl == D("19.9")


def test_fee_in_a_third_currency_costs_that_cash_only() -> None:
    s = run(fill("buy", "1", "100", fee="0.01", fee_currency="BNB"))
    p = s.position("paper", "BTC/USDT")
    assert s.balances == {"USDT": D(-100), "BNB": D("-0.01")}
    assert p.realized_pnl == D(0)
    assert s.fees_paid() == {"BNB": D("0.01")}


def test_positions_are_per_venue_and_symbol_with_shared_cash() -> None:
    s = run(
        fill("buy", "1", "100", venue="paper"),
        fill("sell", "1", "101", venue="binance"),
        fill("buy", "10", "5", symbol="ETH/USDT", fee="0.05"),
    )
    assert s.position("paper", "BTC/USDT").amount == D(1)
    assert s.position("binance", "BTC/USDT").amount == D(-1)
    assert s.position("paper", "ETH/USDT").amount == D(10)
    assert set(s.positions) == {("paper", "BTC/USDT"), ("binance", "BTC/USDT"), ("paper", "ETH/USDT")}
    assert s.balances == {"USDT": D(-100) + D(101) - D(50) - D("0.05")}


def test_a_fill_applies_once_by_venue_and_trade_id() -> None:
    f = fill("buy", "1", "100", trade_id="42")
    once = run(f)
    assert apply_fill(once, f) is once
    # the same trade id on another venue is another trade
    other = apply_fill(once, fill("buy", "1", "100", trade_id="42", venue="binance"))
    assert other.applied_trades == {"paper|42", "binance|42"}


def test_apply_fill_does_not_touch_its_input() -> None:
    before = run(fill("buy", "1", "100"))
    snapshot = (dict(before.positions), dict(before.balances), before.applied_trades)
    apply_fill(before, fill("sell", "3", "100"))
    assert (dict(before.positions), dict(before.balances), before.applied_trades) == snapshot


def test_fill_for_another_account_is_rejected() -> None:
    with pytest.raises(InvalidMessage) as err:
        apply_fill(AccountState("acc"), fill("buy", "1", "100", account="other"))
    assert err.value.field == "account_id"


def test_deposit_adds_cash() -> None:
    s = deposit(deposit(AccountState("acc"), "USDT", D("1000.50")), "USDT", D("0.5"))
    assert s.balances == {"USDT": D(1001)}
    assert str(s.balances["USDT"]) == "1001"


def test_position_updated_payload_is_valid_and_readable() -> None:
    f = fill("buy", "0.00100000", "65000.10", fee="0.065", trade_id="x1")
    s = apply_fill(deposit(AccountState("acc"), "USDT", D(1000)), f)
    ev = position_updated(s, f)
    assert isinstance(ev, PositionUpdated)
    assert (ev.trade_id, ev.amount, ev.avg_entry_price) == ("x1", D("0.001"), D("65000.1"))
    assert ev.balances == {"USDT": D(1000) - D("65.0001") - D("0.065")}
    assert PositionUpdated.model_validate_json(ev.model_dump_json()) == ev
    assert str(ev.amount) == "0.001"


@pytest.mark.parametrize(
    ("raw", "text"),
    [("1.500", "1.5"), ("100", "100"), ("1E+2", "100"), ("0.0000", "0"), ("-0", "0"), ("1e-20", "0")],
)
def test_canonical_text(raw: str, text: str) -> None:
    assert str(canonical(D(raw))) == text
