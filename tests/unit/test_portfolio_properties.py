"""Hypothesis properties of the pure portfolio engine.

- redelivery and regrouping: any duplicates, any batching -> the very same state;
- any order of delivery: amounts, cash, fees and total PnL at a mark are the same (the split between
  realized and unrealized legitimately depends on the order under average cost);
- conservation: at any marks, equity change == price moves - fees, exactly; and realized + unrealized
  equals that change;
- realized PnL through flips matches an independent average-cost reference in exact rationals.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal as D
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from zvt_pipeline.messages.events import OrderExecuted
from zvt_pipeline.messages.types import Fee, Side, split_symbol
from zvt_pipeline.portfolio.engine import AccountState, apply_fill, apply_fills, canonical, deposit
from zvt_pipeline.portfolio.valuation import value_account

T0 = datetime(2024, 1, 1, tzinfo=UTC)
KEYS = (("paper", "BTC/USDT"), ("binance", "BTC/USDT"), ("paper", "ETH/USDT"))
INITIAL_CASH = D(100_000)
TOLERANCE = D("1e-9")  # the average entry price is rounded to 18 places; PnL built on it may drift by less

amounts = st.decimals(min_value=D("0.0001"), max_value=D(50), places=4)
prices = st.decimals(min_value=D(1), max_value=D(1000), places=2)
fee_rates = st.decimals(min_value=D(0), max_value=D("0.01"), places=4)


@st.composite
def fill_at(draw: st.DrawFn, n: int, keys: Sequence[tuple[str, str]] = KEYS) -> OrderExecuted:
    venue, symbol = draw(st.sampled_from(keys))
    base, quote = split_symbol(symbol)
    amount, price, rate = draw(amounts), draw(prices), draw(fee_rates)
    kind = draw(st.sampled_from(["quote", "base", "other", "none"]))
    fee = {
        "quote": Fee(cost=canonical(amount * price * rate), currency=quote),
        "base": Fee(cost=canonical(amount * rate), currency=base),
        "other": Fee(cost=rate, currency="BNB"),
        "none": Fee(cost=D(0), currency=quote),
    }[kind]
    return OrderExecuted(
        trade_id=f"t{n}",
        client_order_id="o1",
        account_id="acc",
        venue=venue,
        symbol=symbol,
        side=draw(st.sampled_from(Side)),
        amount=amount,
        price=price,
        fee=fee,
        timestamp=T0,
    )


@st.composite
def fill_lists(
    draw: st.DrawFn, max_size: int = 25, keys: Sequence[tuple[str, str]] = KEYS
) -> list[OrderExecuted]:
    n = draw(st.integers(min_value=1, max_value=max_size))
    return [draw(fill_at(i, keys)) for i in range(n)]


def start() -> AccountState:
    return deposit(AccountState("acc"), "USDT", INITIAL_CASH)


def total_pnl(state: AccountState, marks: dict[tuple[str, str], D]) -> D:
    v = value_account(state, marks, "USDT")
    return v.realized_pnl + v.unrealized_pnl


@given(fills=fill_lists(), data=st.data())
def test_duplicates_and_any_grouping_give_the_same_state(
    fills: list[OrderExecuted], data: st.DataObject
) -> None:
    deliveries: list[OrderExecuted] = []
    for i, f in enumerate(fills):
        deliveries.append(f)
        again = data.draw(st.lists(st.integers(min_value=0, max_value=i), max_size=3))
        deliveries += [fills[j] for j in again]
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(deliveries)), max_size=5)))
    state = start()
    for lo, hi in zip([0, *cuts], [*cuts, len(deliveries)], strict=True):
        state = apply_fills(state, deliveries[lo:hi])
    assert state == apply_fills(start(), fills)


@given(fills=fill_lists(), data=st.data(), mark=prices)
def test_any_order_of_delivery_gives_same_holdings_cash_and_total_pnl(
    fills: list[OrderExecuted], data: st.DataObject, mark: D
) -> None:
    shuffled = data.draw(st.permutations(fills))
    a, b = apply_fills(start(), fills), apply_fills(start(), shuffled)
    assert {k: p.amount for k, p in a.positions.items()} == {k: p.amount for k, p in b.positions.items()}
    assert a.balances == b.balances
    assert a.fees_paid() == b.fees_paid()
    assert a.applied_trades == b.applied_trades
    marks = dict.fromkeys(KEYS, mark)
    assert abs(total_pnl(a, marks) - total_pnl(b, marks)) <= TOLERANCE


@given(fills=fill_lists(), marks=st.tuples(prices, prices, prices))
@settings(max_examples=200)
def test_equity_change_is_price_moves_minus_fees(fills: list[OrderExecuted], marks: tuple[D, D, D]) -> None:
    mark = dict(zip(KEYS, marks, strict=True))
    state = apply_fills(start(), fills)
    equity = value_account(state, mark, "USDT").equity
    expected = D(0)
    for f in fills:
        base, quote = split_symbol(f.symbol)
        m = mark[(f.venue, f.symbol)]
        base_fee = f.fee.cost if f.fee.currency == base else D(0)
        quote_fee = f.fee.cost if f.fee.currency == quote else D(0)
        expected += f.side.sign * f.amount * (m - f.price) - quote_fee - base_fee * m
    assert equity - INITIAL_CASH == expected  # exact: no division anywhere on this path
    assert abs(total_pnl(state, mark) - expected) <= TOLERANCE


def reference(fills: Sequence[OrderExecuted]) -> tuple[Fraction, Fraction, Fraction]:
    """Average cost in exact rationals, written independently of the engine: (amount, avg, realized)."""
    qty, cost, realized = Fraction(0), Fraction(0), Fraction(0)  # cost = signed amount * average
    for f in fills:
        base, quote = split_symbol(f.symbol)
        price = Fraction(f.price)
        base_fee = Fraction(f.fee.cost) if f.fee.currency == base else Fraction(0)
        quote_fee = Fraction(f.fee.cost) if f.fee.currency == quote else Fraction(0)
        delta = f.side.sign * Fraction(f.amount) - base_fee
        realized -= quote_fee + base_fee * price
        if qty == 0 or (qty > 0) == (delta > 0):
            qty, cost = qty + delta, cost + delta * price
            continue
        avg = cost / qty
        closed = min(abs(qty), abs(delta))
        realized += closed * (price - avg) * (1 if qty > 0 else -1)
        qty += delta
        # what is left is either the old side at its average or the new side at the fill price
        cost = qty * (avg if qty == 0 or (qty > 0) == (qty - delta > 0) else price)
    return qty, (cost / qty if qty else Fraction(0)), realized


@given(fills=fill_lists(max_size=40, keys=[("paper", "BTC/USDT")]))
@settings(max_examples=300)
def test_realized_pnl_through_flips_matches_reference(fills: list[OrderExecuted]) -> None:
    pos = apply_fills(AccountState("acc"), fills).position("paper", "BTC/USDT")
    qty, avg, realized = reference(fills)
    assert Fraction(pos.amount) == qty
    assert abs(Fraction(pos.avg_entry_price) - avg) <= Fraction(TOLERANCE)
    assert abs(Fraction(pos.realized_pnl) - realized) <= Fraction(TOLERANCE)


@given(a=amounts, extra=amounts, p1=prices, p2=prices, long=st.booleans(), rate=fee_rates)
def test_a_flip_books_the_closed_side_and_opens_the_rest_at_the_fill(
    a: D, extra: D, p1: D, p2: D, long: bool, rate: D
) -> None:
    open_side, close_side = (Side.BUY, Side.SELL) if long else (Side.SELL, Side.BUY)
    fee = canonical((a + extra) * p2 * rate)
    fills = [
        OrderExecuted(
            trade_id=str(i), client_order_id="o", account_id="acc", venue="paper", symbol="BTC/USDT",
            side=side, amount=amount, price=price, fee=Fee(cost=cost, currency="USDT"), timestamp=T0,
        )
        for i, (side, amount, price, cost) in enumerate(
            [(open_side, a, p1, D(0)), (close_side, a + extra, p2, fee)]
        )
    ]  # fmt: skip
    pos = apply_fills(AccountState("acc"), fills).position("paper", "BTC/USDT")
    direction = 1 if long else -1
    assert pos.realized_pnl == a * (p2 - p1) * direction - fee
    assert pos.amount == -direction * extra
    assert pos.avg_entry_price == p2


@given(fill=fill_at(0))
def test_applying_twice_is_applying_once(fill: OrderExecuted) -> None:
    once = apply_fill(start(), fill)
    assert apply_fill(once, fill) == once
