"""The market data ingester on a real Redis: marks, books, bounded streams, the on_book hook, the run loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
import redis

from zvt_pipeline.errors import VenueRetryable
from zvt_pipeline.marketdata import MarketDataIngester, SyntheticConfig, SyntheticMarketData, read_book
from zvt_pipeline.markets import load_markets_file
from zvt_pipeline.messages.events import (
    EVENT_TYPES,
    OrderBookUpdated,
    Payload,
    PriceUpdated,
    TradeTick,
    TradingStateChanged,
)
from zvt_pipeline.messages.types import TradingState
from zvt_pipeline.state.keys import Keys

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MARKETS = load_markets_file()


def generator(seed: int = 1, **cfg: object) -> SyntheticMarketData:
    return SyntheticMarketData(MARKETS, SyntheticConfig(seed=seed, start_at=T0, **cfg))  # type: ignore[arg-type]


def marks(client: redis.Redis, keys: Keys) -> dict[str, Decimal]:
    return {k.decode(): Decimal(v.decode()) for k, v in client.hgetall(keys.marks).items()}


def test_marks_books_and_streams_are_written(redis_client: redis.Redis, keys: Keys) -> None:
    batch = generator().step()
    ingester = MarketDataIngester(redis_client, keys)
    assert ingester.ingest(batch) == len(batch)

    prices = {p.symbol: p for p in batch if isinstance(p, PriceUpdated)}
    assert marks(redis_client, keys) == {f"paper|{s}": p.price for s, p in prices.items()}
    for book in (p for p in batch if isinstance(p, OrderBookUpdated)):
        assert read_book(redis_client, keys, "paper", book.symbol) == book

    for cls in (PriceUpdated, OrderBookUpdated, TradeTick):
        sent = [p for p in batch if isinstance(p, cls)]
        entries = redis_client.xrange(keys.md_stream(cls.TYPE))
        assert len(entries) == len(sent)
        for (_, fields), payload in zip(entries, sent, strict=True):
            assert fields[b"type"].decode() == cls.TYPE
            decoded = EVENT_TYPES[fields[b"type"].decode()].model_validate_json(fields[b"data"])
            assert decoded == payload
    # Decimals travel as exact text, never as JSON floats.
    raw = orjson.loads(redis_client.get(keys.book("paper", "BTC/USDT")))
    assert isinstance(raw["bids"][0]["price"], str)


def test_last_book_and_mark_of_a_batch_win_but_every_update_is_streamed(
    redis_client: redis.Redis, keys: Keys
) -> None:
    gen = generator()
    first, second = gen.step(), gen.step()
    MarketDataIngester(redis_client, keys).ingest([*first, *second])
    last_book = next(p for p in second if isinstance(p, OrderBookUpdated) and p.symbol == "ETH/USDT")
    last_price = next(p for p in second if isinstance(p, PriceUpdated) and p.symbol == "ETH/USDT")
    assert read_book(redis_client, keys, "paper", "ETH/USDT") == last_book
    assert marks(redis_client, keys)["paper|ETH/USDT"] == last_price.price
    assert redis_client.xlen(keys.md_stream(OrderBookUpdated.TYPE)) == 2 * len(MARKETS)


def test_market_data_streams_are_bounded_by_maxlen(redis_client: redis.Redis, keys: Keys) -> None:
    ingester = MarketDataIngester(redis_client, keys, maxlen=100)
    gen = generator()
    for _ in range(200):
        ingester.ingest(gen.step())
    # 600 book updates went in; MAXLEN ~ trims whole radix-tree nodes, so a little over 100 may remain.
    length = redis_client.xlen(keys.md_stream(OrderBookUpdated.TYPE))
    assert 100 <= length < 300
    # What remains is the newest: the last entry is the last book written.
    (_, fields) = redis_client.xrevrange(keys.md_stream(OrderBookUpdated.TYPE), count=1)[0]
    assert OrderBookUpdated.model_validate_json(fields[b"data"]) == read_book(
        redis_client, keys, "paper", "SOL/USDT"
    )


def test_on_book_is_called_once_per_changed_symbol_after_the_write(
    redis_client: redis.Redis, keys: Keys
) -> None:
    seen: list[tuple[str, str, bool]] = []

    def on_book(venue: str, symbol: str) -> None:
        # The hook runs after the batch is in Redis: the matcher can read the new book.
        seen.append((venue, symbol, read_book(redis_client, keys, venue, symbol) is not None))

    ingester = MarketDataIngester(redis_client, keys, on_book=on_book)
    gen = generator()
    ingester.ingest([*gen.step(), *gen.step()])
    assert seen == [("paper", s, True) for s in MARKETS]
    seen.clear()
    ingester.ingest([p for p in gen.step() if not isinstance(p, OrderBookUpdated)])
    assert seen == []


def test_non_market_data_is_refused_and_nothing_is_written(redis_client: redis.Redis, keys: Keys) -> None:
    batch: list[Payload] = [*generator().step(), TradingStateChanged(state=TradingState.HALTED)]
    with pytest.raises(TypeError, match="TradingStateChanged"):
        MarketDataIngester(redis_client, keys).ingest(batch)
    assert not list(redis_client.scan_iter(match=f"{keys.prefix}*"))
    assert MarketDataIngester(redis_client, keys).ingest([]) == 0


def test_run_counts_polls_and_payloads(redis_client: redis.Redis, keys: Keys) -> None:
    ingester = MarketDataIngester(redis_client, keys)
    stats = ingester.run(generator(), count=5)
    assert stats.polls == 5
    assert stats.books == stats.prices == 5 * len(MARKETS)
    assert stats.payloads == stats.books + stats.prices + stats.trades
    assert redis_client.xlen(keys.md_stream(PriceUpdated.TYPE)) == 5 * len(MARKETS)
    assert ingester.run(generator(), duration=0.0).polls == 6  # counters accumulate; duration 0 = one poll


def test_run_stops_on_the_stop_event(redis_client: redis.Redis, keys: Keys) -> None:
    stop = threading.Event()
    calls = 0

    def on_book(venue: str, symbol: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 3 * len(MARKETS):
            stop.set()

    stats = MarketDataIngester(redis_client, keys, on_book=on_book).run(
        generator(), interval=0.001, stop_event=stop
    )
    assert stats.polls == 3


def test_run_survives_retryable_source_errors(redis_client: redis.Redis, keys: Keys) -> None:
    class Flaky:
        """A source whose every other poll times out, like a venue under load."""

        def __init__(self) -> None:
            self.inner = generator()
            self.n = 0

        def poll(self) -> Sequence[Payload]:
            self.n += 1
            if self.n % 2 == 0:
                raise VenueRetryable("RequestTimeout: binance timed out")
            return self.inner.poll()

    stats = MarketDataIngester(redis_client, keys).run(Flaky(), count=6)
    assert (stats.polls, stats.errors, stats.books) == (6, 3, 3 * len(MARKETS))


def test_seed_books_writes_one_book_and_mark_per_market(redis_client: redis.Redis, keys: Keys) -> None:
    ingester = MarketDataIngester(redis_client, keys, venue="sim")
    written = ingester.seed_books(MARKETS, seed=42)
    assert sorted(p.symbol for p in written if isinstance(p, OrderBookUpdated)) == sorted(MARKETS)
    assert set(marks(redis_client, keys)) == {f"sim|{s}" for s in MARKETS}
    for symbol in MARKETS:
        book = read_book(redis_client, keys, "sim", symbol)
        assert book is not None and book.bids[0].price < book.asks[0].price
    assert not redis_client.exists(keys.md_stream(TradeTick.TYPE))
    # Same seed, same books.
    again = MarketDataIngester(redis_client, keys, venue="sim").seed_books(MARKETS, seed=42)
    assert [p.model_dump(exclude={"timestamp"}) for p in again] == [
        p.model_dump(exclude={"timestamp"}) for p in written
    ]


def test_ingest_throughput_prints(redis_client: redis.Redis, keys: Keys) -> None:
    """Measures book updates/s into Redis (printed, never asserted). Run with ``-s`` to see it."""
    gen = generator(seed=3)
    steps_per_batch = 10
    batches = [[p for _ in range(steps_per_batch) for p in gen.step()] for _ in range(100)]
    ingester = MarketDataIngester(redis_client, keys, maxlen=10_000)
    started = time.perf_counter()
    for batch in batches:
        ingester.ingest(batch)
    elapsed = time.perf_counter() - started
    books = ingester.stats.books
    print(
        f"\ningest: {books} books + {ingester.stats.prices} marks + {ingester.stats.trades} trades "
        f"in {elapsed:.3f}s = {books / elapsed:,.0f} book updates/s "
        f"({ingester.stats.payloads / elapsed:,.0f} payloads/s, batches of {steps_per_batch} steps)"
    )
    assert books == 100 * steps_per_batch * len(MARKETS)
