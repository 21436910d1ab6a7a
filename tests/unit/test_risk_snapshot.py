"""Building a RiskSnapshot from raw Redis replies (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import BookLevel, OrderBookUpdated
from zvt_pipeline.messages.types import OrderType, Side, TradingState
from zvt_pipeline.risk.snapshot import build_snapshot, pick_mark, top_of_book

D = Decimal


def order(venue: str | None = "paper") -> OrderSpec:
    return OrderSpec(
        client_order_id="c1",
        account_id="acc",
        symbol="BTC/USDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        amount=D("1"),
        price=D("100"),
        venue=venue,
    )


def book(bid: str, ask: str) -> bytes:
    return (
        OrderBookUpdated(
            venue="paper",
            symbol="BTC/USDT",
            bids=(BookLevel(price=D(bid), amount=D("1")), BookLevel(price=D(bid) - 1, amount=D("1"))),
            asks=(BookLevel(price=D(ask), amount=D("1")),),
        )
        .model_dump_json()
        .encode()
    )


def raw(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "states": [None, None],
        "positions_raw": {},
        "marks_raw": {},
        "books_raw": [],
        "balances_raw": {},
        "reserved_raw": {},
        "index_raw": {},
    }
    base.update(kw)
    return base


def pos(amount: str, avg: str = "0") -> bytes:
    return orjson.dumps({"amount": amount, "avg_entry_price": avg, "realized_pnl": "0"})


def test_empty_state_is_active_and_flat() -> None:
    s = build_snapshot(order(), **raw())
    assert s.trading_state is TradingState.ACTIVE and s.account_state is None
    assert (s.mark, s.best_bid, s.best_ask, s.position, s.gross_exposure) == (None, None, None, 0, 0)


def test_positions_marks_and_exposure() -> None:
    s = build_snapshot(
        order(),
        **raw(
            positions_raw={
                b"paper|BTC/USDT": pos("0.5", "90"),
                b"binance|BTC/USDT": pos("-0.2", "95"),
                b"paper|ETH/USDT": pos("-3", "10"),
                b"paper|SOL/USDT": pos("2", "7"),  # no mark: valued at its entry price
            },
            marks_raw={b"binance|BTC/USDT": b"101", b"paper|BTC/USDT": b"100", b"paper|ETH/USDT": b"12.5"},
            balances_raw={b"USDT": b"1000.10", b"BTC": b"0"},
            reserved_raw={b"USDT": b"0.1"},
        ),
    )
    assert s.mark == D("100")  # the order's venue is preferred
    assert s.position == D("0.3")  # summed over venues
    # BTC legs at the order's mark (0.5*100 + 0.2*100) + ETH 3*12.5 + SOL 2*7
    assert s.gross_exposure == D("70") + D("37.5") + D("14")
    assert s.free("USDT") == D("1000.00") and s.free("EUR") == 0


def test_mark_from_any_venue_when_the_order_names_none() -> None:
    marks = {"binance|BTC/USDT": D("101"), "kraken|BTC/USDT": D("102"), "paper|ETH/USDT": D("5")}
    assert pick_mark(marks, "BTC/USDT", None) == D("101")
    assert pick_mark(marks, "BTC/USDT", "kraken") == D("102")
    assert pick_mark(marks, "BTC/USDT", "paper") == D("101")
    assert pick_mark(marks, "SOL/USDT", None) is None


def test_books_keep_the_least_favourable_top_across_venues() -> None:
    assert top_of_book(book("99.5", "100.5")) == (D("99.5"), D("100.5"))
    assert top_of_book(None) == (None, None)
    s = build_snapshot(order(None), **raw(books_raw=[book("99", "101"), None, book("98", "100")]))
    assert (s.best_bid, s.best_ask) == (D("98"), D("101"))
    assert s.reference_mark == D("99.5")  # no mark: mid of the book


def test_states_and_unreadable_state_fails_closed() -> None:
    s = build_snapshot(order(), **raw(states=[b"REDUCING", b"ACTIVE"]))
    assert s.trading_state is TradingState.REDUCING
    s = build_snapshot(order(), **raw(states=[None, b"garbage"]))
    assert s.trading_state is TradingState.HALTED


def test_order_index_is_decoded() -> None:
    s = build_snapshot(order(), **raw(index_raw={b"run_id": b"r1", b"status": b"validated"}))
    assert s.order_index == {"run_id": "r1", "status": "validated"}
