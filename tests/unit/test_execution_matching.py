"""Pure book-walking rules of the paper venue."""

from __future__ import annotations

from decimal import Decimal as D

from zvt_pipeline.execution.venues import matching
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import BookLevel

BIDS = (BookLevel(price=D("99"), amount=D("1")), BookLevel(price=D("98"), amount=D("2")))
ASKS = (
    BookLevel(price=D("100"), amount=D("1")),
    BookLevel(price=D("101"), amount=D("2")),
    BookLevel(price=D("102"), amount=D("3")),
)


def spec(
    side: str = "buy", amount: str = "1", type_: str = "market", price: str | None = None, tif: str = "GTC"
):
    return OrderSpec(
        client_order_id="c1",
        account_id="a1",
        symbol="BTC/USDT",
        side=side,
        type=type_,
        amount=D(amount),
        price=D(price) if price else None,
        time_in_force=tif,
    )


def test_market_buy_walks_levels_one_fill_each_and_shrinks_the_last():
    r = matching.match_taker(spec(amount="2.5"), BIDS, ASKS)
    assert [(t.price, t.amount) for t in r.takes] == [(D("100"), D("1")), (D("101"), D("1.5"))]
    assert r.asks == (BookLevel(price=D("101"), amount=D("0.5")), ASKS[2])
    assert r.bids == BIDS and not r.rests
    assert matching.vwap(r.takes) == D("100.6")


def test_market_sell_runs_out_of_depth_partially():
    r = matching.match_taker(spec(side="sell", amount="5"), BIDS, ASKS)
    assert sum(t.amount for t in r.takes) == D("3")
    assert r.bids == () and not r.rests


def test_limit_buy_takes_only_crossing_levels_and_rests_gtc():
    r = matching.match_taker(spec(amount="4", type_="limit", price="101"), BIDS, ASKS)
    assert [(t.price, t.amount) for t in r.takes] == [(D("100"), D("1")), (D("101"), D("2"))]
    assert r.rests
    ioc = matching.match_taker(spec(amount="4", type_="limit", price="101", tif="IOC"), BIDS, ASKS)
    assert not ioc.rests and sum(t.amount for t in ioc.takes) == D("3")


def test_fok_is_all_or_nothing_within_the_limit():
    none = matching.match_taker(spec(amount="4", type_="limit", price="101", tif="FOK"), BIDS, ASKS)
    assert none.takes == [] and none.asks == ASKS
    full = matching.match_taker(spec(amount="3", type_="limit", price="101", tif="FOK"), BIDS, ASKS)
    assert sum(t.amount for t in full.takes) == D("3")


def test_non_crossing_limit_takes_nothing():
    r = matching.match_taker(spec(amount="1", type_="limit", price="99.5"), BIDS, ASKS)
    assert r.takes == [] and r.rests


def test_maker_fill_is_at_the_resting_price():
    takes, left = matching.match_maker(matching.Side.BUY, D("101"), D("1.5"), ASKS)
    assert [(t.price, t.amount) for t in takes] == [(D("101"), D("1")), (D("101"), D("0.5"))]
    assert left[0] == BookLevel(price=D("101"), amount=D("1.5"))


def test_fee_and_vwap_are_rounded_to_12_places():
    assert matching.fee_cost(D("100.01"), D("0.00001"), D("0.00075")) == D("0.000000750075")
    takes = [matching.Take(D("1"), D("1")), matching.Take(D("2"), D("2"))]
    assert matching.vwap(takes) == D("1.666666666667")
    assert matching.vwap([]) is None
