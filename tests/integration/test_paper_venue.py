"""The paper venue on a real Redis: book walking, partial fills, FOK, resting limits, moved books,
idempotent re-create, determinism."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
import redis

from zvt_pipeline.errors import VenueRetryable, VenueTerminal
from zvt_pipeline.execution.venues.paper import PaperVenue
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import BookLevel, OrderBookUpdated, OrderExecuted
from zvt_pipeline.state.keys import Keys

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SYMBOL = "BTC/USDT"  # bundled market: taker 0.001, maker 0.0008


def levels(*pairs: tuple[str, str]) -> tuple[BookLevel, ...]:
    return tuple(BookLevel(price=D(p), amount=D(a)) for p, a in pairs)


def put_book(client: redis.Redis, keys: Keys, bids, asks, venue: str = "paper") -> None:
    book = OrderBookUpdated(venue=venue, symbol=SYMBOL, bids=levels(*bids), asks=levels(*asks), timestamp=T0)
    client.set(keys.book(venue, SYMBOL), book.model_dump_json())


def book(client: redis.Redis, keys: Keys) -> OrderBookUpdated:
    return OrderBookUpdated.model_validate_json(client.get(keys.book("paper", SYMBOL)))


def order(
    coid: str, side: str = "buy", amount: str = "1", price: str | None = None, tif: str = "GTC"
) -> OrderSpec:
    return OrderSpec(
        client_order_id=coid,
        account_id="acct",
        symbol=SYMBOL,
        side=side,
        type="limit" if price else "market",
        amount=D(amount),
        price=D(price) if price else None,
        time_in_force=tif,
        created_at=T0,
    )


@pytest.fixture
def venue(redis_client: redis.Redis, keys: Keys) -> PaperVenue:
    put_book(
        redis_client,
        keys,
        bids=[("49990", "1"), ("49980", "2")],
        asks=[("50000", "0.5"), ("50010", "1"), ("50020", "2")],
    )
    return PaperVenue(redis_client, keys, seed=7, clock=lambda: T0)


def test_market_buy_walks_the_book_at_vwap_with_taker_fees_and_removes_liquidity(venue, redis_client, keys):
    vo = venue.create_order(order("m1", amount="1"))
    assert vo.status == "closed" and vo.filled == D("1") and vo.remaining == 0
    assert [(t.price, t.amount) for t in vo.trades] == [(D("50000"), D("0.5")), (D("50010"), D("0.5"))]
    assert vo.average == D("50005")
    assert [t.trade_id for t in vo.trades] == ["paper-m1-1", "paper-m1-2"]
    assert vo.trades[0].fee.cost == D("25") and vo.trades[0].fee.currency == "USDT"  # 25000 * 0.001
    assert all(t.liquidity == "taker" for t in vo.trades)
    assert book(redis_client, keys).asks == levels(("50010", "0.5"), ("50020", "2"))
    # the next order sees the moved book
    vo2 = venue.create_order(order("m2", amount="0.5"))
    assert vo2.trades[0].price == D("50010")
    assert venue.best_bid_ask(SYMBOL).ask == D("50020")


def test_market_order_partially_fills_when_depth_runs_out_and_the_rest_is_canceled(venue, redis_client, keys):
    vo = venue.create_order(order("s1", side="sell", amount="5"))
    assert vo.status == "canceled" and vo.filled == D("3") and vo.remaining == D("2")
    assert book(redis_client, keys).bids == ()


def test_fok_all_or_nothing(venue, redis_client, keys):
    before = book(redis_client, keys)
    vo = venue.create_order(order("f1", amount="2", price="50010", tif="FOK"))
    assert vo.status == "canceled" and vo.filled == 0 and vo.trades == ()
    assert book(redis_client, keys) == before
    vo = venue.create_order(order("f2", amount="1.5", price="50010", tif="FOK"))
    assert vo.status == "closed" and vo.filled == D("1.5")


def test_ioc_limit_cancels_the_rest_and_gtc_limit_rests_then_fills_as_maker(venue, redis_client, keys):
    ioc = venue.create_order(order("i1", amount="1", price="50000", tif="IOC"))
    assert ioc.status == "canceled" and ioc.filled == D("0.5")
    rest = venue.create_order(order("g1", amount="1", price="49995"))
    assert rest.status == "open" and rest.filled == 0
    assert venue.match_resting(SYMBOL) == []  # nothing crosses yet
    # the market moves down through our bid
    put_book(
        redis_client, keys, bids=[("49900", "1")], asks=[("49990", "0.4"), ("49995", "0.3"), ("49999", "5")]
    )
    fills = venue.match_resting(SYMBOL)
    assert [(f.trade.price, f.trade.amount, f.filled_total, f.status) for f in fills] == [
        (D("49995"), D("0.4"), D("0.4"), "open"),
        (D("49995"), D("0.3"), D("0.7"), "open"),
    ]
    assert fills[0].trade.liquidity == "maker" and fills[0].trade.fee.cost == D("15.9984")  # 19998 * 0.0008
    assert [f.trade.trade_id for f in fills] == ["paper-g1-1", "paper-g1-2"]
    ev = fills[1].event("paper")
    assert isinstance(ev, OrderExecuted)
    assert ev.filled_total == D("0.7") and ev.order_amount == D("1") and ev.client_order_id == "g1"
    assert book(redis_client, keys).asks == levels(("49999", "5"))
    assert venue.match_resting(SYMBOL) == []  # the same book fills nothing twice
    put_book(redis_client, keys, bids=[("49900", "1")], asks=[("49990", "1")])
    last = venue.match_resting(SYMBOL)
    assert [(f.trade.amount, f.status) for f in last] == [(D("0.3"), "closed")]
    stored = venue.fetch_order_by_client_id(SYMBOL, "g1")
    assert stored is not None and stored.status == "closed" and stored.average == D("49995")
    assert redis_client.zcard(keys.paper_resting("paper", SYMBOL)) == 0


def test_resting_orders_fill_in_price_time_priority(venue, redis_client, keys):
    put_book(redis_client, keys, bids=[("49000", "1")], asks=[("51000", "1")])
    venue.create_order(order("low", amount="1", price="49500"))
    venue.create_order(order("high", amount="1", price="49600"))
    put_book(redis_client, keys, bids=[("49000", "1")], asks=[("49400", "1.5")])
    fills = venue.match_resting(SYMBOL)
    assert [(f.order.client_order_id, f.trade.amount) for f in fills] == [("high", D("1")), ("low", D("0.5"))]


def test_cancel_resting_order(venue):
    venue.create_order(order("g2", amount="1", price="49000"))
    done = venue.cancel_order(SYMBOL, "g2")
    assert done is not None and done.status == "canceled"
    assert venue.match_resting(SYMBOL) == []
    assert venue.cancel_order(SYMBOL, "nope") is None


def test_create_is_idempotent_by_client_order_id(venue, redis_client, keys):
    first = venue.create_order(order("dup", amount="1"))
    after = book(redis_client, keys)
    again = venue.create_order(order("dup", amount="1"))
    assert again == first
    assert book(redis_client, keys) == after  # no liquidity taken twice
    assert venue.fetch_order_by_client_id(SYMBOL, "dup") == first
    assert venue.fetch_order_by_client_id(SYMBOL, "missing") is None


def test_same_seed_same_results(redis_client, keys):
    results = []
    for prefix in ("a:", "b:"):
        k = Keys(keys.prefix + prefix)
        put_book(redis_client, k, bids=[("1", "1")], asks=[("50000", "0.5"), ("50010", "1")])
        v = PaperVenue(redis_client, k, seed=42, clock=lambda: T0)
        results.append([v.create_order(order("d1", amount="0.7")), v.create_order(order("d2", amount="0.5"))])
    assert results[0] == results[1]
    other = PaperVenue(redis_client, Keys(keys.prefix + "c:"), seed=43, clock=lambda: T0)
    assert other._venue_order_id("d1") != results[0][0].venue_order_id


def test_balance_and_errors(venue, redis_client, keys):
    assert venue.free_balance("acct", "USDT") is None
    redis_client.hset(keys.balance("acct"), "USDT", "1234.5")
    assert venue.free_balance("acct", "USDT") == D("1234.5")
    with pytest.raises(VenueTerminal):
        venue.create_order(order("x", amount="1").model_copy(update={"symbol": "DOGE/USDT"}))
    redis_client.delete(keys.book("paper", SYMBOL))
    with pytest.raises(VenueRetryable):
        venue.create_order(order("y", amount="1"))


def test_concurrent_orders_never_fill_the_same_depth(redis_client, keys, redis_url):
    """Two clients race for the same 0.5 at the top of the book; WATCH/MULTI gives it to one."""
    import threading

    put_book(redis_client, keys, bids=[("1", "1")], asks=[("50000", "0.5"), ("60000", "100")])
    results = {}

    def buy(coid: str) -> None:
        client = redis.Redis.from_url(redis_url)
        results[coid] = PaperVenue(client, keys, clock=lambda: T0).create_order(order(coid, amount="0.5"))

    threads = [threading.Thread(target=buy, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cheap = [vo for vo in results.values() if vo.trades[0].price == D("50000")]
    assert len(cheap) == 1
    assert book(redis_client, keys).asks == levels(("60000", str(D("100") - D("0.5") * 7)))
