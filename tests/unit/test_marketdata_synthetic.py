"""The synthetic market data generator: determinism under a seed and a sane book at every step."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from zvt_pipeline.marketdata import SyntheticConfig, SyntheticMarketData
from zvt_pipeline.markets import Market, load_markets_file
from zvt_pipeline.messages.events import OrderBookUpdated, PriceUpdated, TradeTick
from zvt_pipeline.messages.types import Side

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MARKETS = load_markets_file()


def generate(seed: int, steps: int, **cfg: object) -> list[str]:
    gen = SyntheticMarketData(MARKETS, SyntheticConfig(seed=seed, start_at=T0, **cfg))  # type: ignore[arg-type]
    return [p.model_dump_json() for p in gen.steps(steps)]


def test_same_seed_gives_the_identical_sequence() -> None:
    assert generate(7, 300) == generate(7, 300)


def test_different_seeds_give_different_sequences() -> None:
    a, b = generate(7, 50), generate(8, 50)
    assert a != b
    # Not just a shifted copy: the first books already differ.
    assert a[0] != b[0]


def test_global_random_is_left_alone() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate(1, 20)
    assert random.random() == expected


def test_each_step_yields_book_then_mark_per_market_and_sometimes_a_trade() -> None:
    gen = SyntheticMarketData(MARKETS, SyntheticConfig(seed=3, start_at=T0))
    batch = gen.step()
    symbols = [p.symbol for p in batch if isinstance(p, OrderBookUpdated)]
    assert symbols == list(MARKETS)
    for p in batch:
        assert isinstance(p, (OrderBookUpdated, PriceUpdated, TradeTick))
        assert p.venue == "paper"
        assert p.timestamp == T0
    second = gen.step()
    assert {p.timestamp for p in second} == {T0 + timedelta(milliseconds=100)}


def _check_book(book: OrderBookUpdated, market: Market, cfg: SyntheticConfig) -> None:
    bids, asks = book.bids, book.asks
    assert len(bids) == len(asks) == cfg.levels
    bid_prices = [lv.price for lv in bids]
    ask_prices = [lv.price for lv in asks]
    assert bid_prices == sorted(bid_prices, reverse=True) and len(set(bid_prices)) == len(bids)
    assert ask_prices == sorted(ask_prices) and len(set(ask_prices)) == len(asks)
    spread_ticks = (asks[0].price - bids[0].price) / market.price_step
    assert 1 <= spread_ticks <= cfg.max_spread_ticks
    for lv in (*bids, *asks):
        assert lv.price > 0 and lv.amount > 0
        assert market.price_ok(lv.price), lv.price
        assert market.amount_ok(lv.amount), lv.amount
    for side in (bid_prices, ask_prices):
        gaps = [abs(a - b) / market.price_step for a, b in pairwise(side)]
        assert all(1 <= g <= cfg.max_level_gap_ticks for g in gaps)


def test_books_stay_sane_over_thousands_of_steps() -> None:
    # High volatility so the walk wanders far from its start and exercises many price levels.
    cfg = SyntheticConfig(seed=11, start_at=T0, volatility=0.002)
    gen = SyntheticMarketData(MARKETS, cfg)
    last_seq: dict[str, int] = defaultdict(int)
    books: dict[str, OrderBookUpdated] = {}
    depth_by_level: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * cfg.levels)
    n_books = n_trades = 0
    for payload in gen.steps(3000):
        market = MARKETS[payload.symbol]
        if isinstance(payload, OrderBookUpdated):
            _check_book(payload, market, cfg)
            assert payload.sequence == last_seq[payload.symbol] + 1
            last_seq[payload.symbol] = payload.sequence
            books[payload.symbol] = payload
            for i, lv in enumerate(payload.bids):
                depth_by_level[payload.symbol][i] += lv.amount * lv.price
            n_books += 1
        elif isinstance(payload, PriceUpdated):
            book = books[payload.symbol]
            assert payload.bid == book.bids[0].price and payload.ask == book.asks[0].price
            assert payload.price == (book.bids[0].price + book.asks[0].price) / 2
        else:
            assert isinstance(payload, TradeTick)
            book = books[payload.symbol]
            touch = book.asks[0] if payload.side is Side.BUY else book.bids[0]
            assert payload.price == touch.price
            assert 0 < payload.amount <= touch.amount and market.amount_ok(payload.amount)
            n_trades += 1
    assert n_books == 3 * 3000
    # trade_probability 0.3: some steps trade, most do not.
    assert 0.2 * n_books < n_trades < 0.4 * n_books
    # Depth grows away from the mid: the deepest level holds much more than the touch, on average.
    for symbol, depth in depth_by_level.items():
        assert depth[-1] > 3 * depth[0], symbol


def test_the_walk_moves_with_volatility_and_stays_put_without() -> None:
    still = SyntheticMarketData(MARKETS, SyntheticConfig(seed=5, start_at=T0, volatility=0.0))
    moving = SyntheticMarketData(MARKETS, SyntheticConfig(seed=5, start_at=T0, volatility=0.001))
    for _ in range(200):
        still.step()
        moving.step()
    assert still.mid("BTC/USDT") == Decimal("60000")
    assert still.mid("SOL/USDT") == Decimal("150")
    assert moving.mid("BTC/USDT") != Decimal("60000")


def test_per_symbol_volatility_and_start_prices() -> None:
    cfg = SyntheticConfig(
        seed=5,
        start_at=T0,
        volatility=0.0,
        volatility_by_symbol={"ETH/USDT": 0.001},
        start_prices={"BTC/USDT": Decimal("42000"), "ETH/USDT": Decimal("2500")},
    )
    gen = SyntheticMarketData(MARKETS, cfg)
    for _ in range(100):
        gen.step()
    assert gen.mid("BTC/USDT") == Decimal("42000")
    assert gen.mid("ETH/USDT") != Decimal("2500")
    assert gen.mid("SOL/USDT") == cfg.default_start_price


def test_no_trades_when_probability_is_zero() -> None:
    gen = SyntheticMarketData(MARKETS, SyntheticConfig(seed=1, start_at=T0, trade_probability=0.0))
    assert not [p for p in gen.steps(500) if isinstance(p, TradeTick)]


def test_trade_ids_are_unique_per_venue() -> None:
    gen = SyntheticMarketData(MARKETS, SyntheticConfig(seed=2, start_at=T0, trade_probability=1.0))
    ids = [p.trade_id for p in gen.steps(200) if isinstance(p, TradeTick)]
    assert len(ids) == 3 * 200 == len(set(ids))


def test_price_floor_keeps_a_tiny_market_positive() -> None:
    # A coin at 3 ticks with huge volatility: the walk is floored so the deepest bid stays above zero.
    tiny = Market(
        symbol="PEPE/USDT", base="PEPE", quote="USDT", amount_step=Decimal("1"), price_step=Decimal("0.0001")
    )
    cfg = SyntheticConfig(seed=9, start_at=T0, start_prices={"PEPE/USDT": Decimal("0.0003")}, volatility=0.1)
    for payload in SyntheticMarketData([tiny], cfg).steps(500):
        if isinstance(payload, OrderBookUpdated):
            _check_book(payload, tiny, cfg)


def test_levels_is_configurable_and_markets_are_required() -> None:
    gen = SyntheticMarketData(MARKETS, SyntheticConfig(seed=1, start_at=T0, levels=5))
    book = gen.step()[0]
    assert isinstance(book, OrderBookUpdated) and len(book.bids) == len(book.asks) == 5
    with pytest.raises(ValueError, match="markets"):
        SyntheticMarketData({})
