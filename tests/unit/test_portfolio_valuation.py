"""Valuation at marks: unrealized PnL, equity, gross and net exposure."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from zvt_pipeline.portfolio.engine import AccountState, Position
from zvt_pipeline.portfolio.valuation import value_account


def state(**balances: str) -> AccountState:
    return AccountState(
        "acc",
        positions={
            ("paper", "BTC/USDT"): Position(D(1), D(100), D(5)),
            ("paper", "ETH/USDT"): Position(D(-2), D(10), D(-1)),
        },
        balances={c: D(a) for c, a in balances.items()},
    )


def test_unrealized_equity_and_exposure() -> None:
    v = value_account(
        state(USDT="1000", BNB="0.5"), {("paper", "BTC/USDT"): D(110), ("paper", "ETH/USDT"): D(12)}
    )
    assert v.quote_currency == "USDT"
    by_symbol = {p.symbol: p for p in v.positions}
    assert by_symbol["BTC/USDT"].unrealized_pnl == D(10)
    assert by_symbol["ETH/USDT"].unrealized_pnl == D(-4)  # short loses when the price rises
    assert by_symbol["ETH/USDT"].notional == D(-24)
    assert v.unrealized_pnl == D(6)
    assert v.realized_pnl == D(4)
    assert v.net_exposure == D(110 - 24)
    assert v.gross_exposure == D(110 + 24)
    assert v.cash == D(1000)
    assert v.equity == D(1000 + 110 - 24)
    assert v.other_cash == {"BNB": D("0.5")}
    assert v.unmarked == ()


def test_missing_mark_falls_back_to_entry_and_is_reported() -> None:
    v = value_account(state(USDT="0"), {("paper", "BTC/USDT"): D(90)})
    assert v.unmarked == (("paper", "ETH/USDT"),)
    eth = next(p for p in v.positions if p.symbol == "ETH/USDT")
    assert (eth.marked, eth.mark, eth.unrealized_pnl) == (False, D(10), D(0))
    assert v.equity == D(90 - 20)


def test_empty_account_defaults_to_usdt() -> None:
    v = value_account(AccountState("acc", balances={"USDT": D(5)}), {})
    assert (v.quote_currency, v.equity, v.gross_exposure) == ("USDT", D(5), D(0))


def test_several_quote_currencies_are_refused() -> None:
    s = AccountState(
        "acc", positions={("paper", "BTC/USDT"): Position(D(1)), ("paper", "BTC/USDC"): Position(D(1))}
    )
    with pytest.raises(ValueError, match="several quote currencies"):
        value_account(s, {})
    with pytest.raises(ValueError, match="not quoted in USDT"):
        value_account(s, {}, quote_currency="USDT")
