"""Market data into Redis: marks, the paper venue's books, and bounded market-data streams.

Per batch of payloads, one Redis pipeline (one round trip, not a transaction: every write is an idempotent
overwrite or an append, so a half-applied batch is simply overwritten by the next one):

- ``PriceUpdated``   -> ``HSET keys.marks "<venue>|<symbol>" <price>`` (exact decimal text)
- ``OrderBookUpdated`` -> ``SET keys.book(venue, symbol) <payload JSON>`` (the paper venue reads and rewrites it)
- every payload      -> ``XADD keys.md_stream(<payload TYPE>) MAXLEN ~ maxlen * type <TYPE> data <JSON>``

Within one batch only the last mark and book per symbol are written (later ones supersede earlier ones);
every payload still goes onto its stream.

Backpressure: market-data streams are bounded by ``MAXLEN ~`` and old entries are trimmed whether or not
anyone read them, because a stale price is worth nothing and a slow consumer must not grow Redis without
bound. Order streams (``steps:*`` and the event store) are never trimmed: an order event is dropped only
after it has been processed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import redis

from zvt_pipeline.errors import ZvtError
from zvt_pipeline.marketdata.config import SyntheticConfig
from zvt_pipeline.marketdata.synthetic import SyntheticMarketData
from zvt_pipeline.markets import Market
from zvt_pipeline.messages.events import OrderBookUpdated, Payload, PriceUpdated, TradeTick
from zvt_pipeline.state.keys import Keys

MARKET_DATA_TYPES: tuple[type[Payload], ...] = (PriceUpdated, OrderBookUpdated, TradeTick)
"""Payload types the ingester accepts; their ``TYPE`` names the stream: ``keys.md_stream("price.updated")``."""


class MarketDataSource(Protocol):
    """Anything that hands over the next batch of market-data payloads (may be empty)."""

    def poll(self) -> Sequence[Payload]: ...


@dataclass(slots=True)
class IngestStats:
    """Progress counters, updated as ``run`` goes (read them from another thread for a progress bar)."""

    polls: int = 0
    payloads: int = 0
    books: int = 0
    prices: int = 0
    trades: int = 0
    errors: int = 0
    started_at: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0

    @property
    def books_per_second(self) -> float:
        return self.books / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        out = {k: v for k, v in asdict(self).items() if k != "started_at"}
        out["books_per_second"] = round(self.books_per_second, 1)
        return out


def mark_field(venue: str, symbol: str) -> str:
    """The field of ``keys.marks`` holding one market's mark."""
    return f"{venue}|{symbol}"


class MarketDataIngester:
    """Writes market-data payloads to Redis. ``on_book(venue, symbol)`` runs after each batch, once per
    symbol whose book changed (the paper venue plugs its resting-order matcher in there)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        venue: str = "paper",
        maxlen: int = 10_000,
        on_book: Callable[[str, str], None] | None = None,
    ) -> None:
        if maxlen < 1:
            raise ValueError("maxlen: must be at least 1")
        self.client = client
        self.keys = keys
        self.venue = venue
        """Venue used by ``seed_books``; payloads carry their own venue."""
        self.maxlen = maxlen
        self.on_book = on_book
        self.stats = IngestStats()

    def ingest(self, payloads: Iterable[Payload]) -> int:
        """Write one batch in one pipeline; returns the number of payloads written."""
        marks: dict[str, str] = {}
        books: dict[tuple[str, str], bytes] = {}
        pipe = self.client.pipeline(transaction=False)
        count = n_books = n_prices = n_trades = 0
        for payload in payloads:
            data = payload.model_dump_json().encode()
            if isinstance(payload, OrderBookUpdated):
                books[(payload.venue, payload.symbol)] = data
                n_books += 1
            elif isinstance(payload, PriceUpdated):
                marks[mark_field(payload.venue, payload.symbol)] = str(payload.price)
                n_prices += 1
            elif isinstance(payload, TradeTick):
                n_trades += 1
            else:
                raise TypeError(f"payload: {type(payload).__name__} is not market data")
            pipe.xadd(
                self.keys.md_stream(payload.TYPE),
                {"type": payload.TYPE, "data": data},
                maxlen=self.maxlen,
                approximate=True,
            )
            count += 1
        if not count:
            return 0
        if marks:
            pipe.hset(self.keys.marks, mapping=marks)
        for (venue, symbol), data in books.items():
            pipe.set(self.keys.book(venue, symbol), data)
        pipe.execute()
        self.stats.payloads += count
        self.stats.books += n_books
        self.stats.prices += n_prices
        self.stats.trades += n_trades
        if self.on_book is not None:
            for venue, symbol in books:
                self.on_book(venue, symbol)
        return count

    def run(
        self,
        source: MarketDataSource,
        interval: float = 0.0,
        duration: float | None = None,
        count: int | None = None,
        stop_event: threading.Event | None = None,
    ) -> IngestStats:
        """Poll ``source`` and ingest each batch until ``count`` polls, ``duration`` seconds or
        ``stop_event`` (whichever first; none of them = until stopped). Sleeps ``interval`` seconds between
        polls (interruptible by ``stop_event``). A retryable ``ZvtError`` from the source (venue timeout, rate
        limit) is counted in ``stats.errors`` and the loop goes on; any other error ends it. Returns the
        (live) counters."""
        stop = stop_event or threading.Event()
        stats = self.stats
        started = time.monotonic()
        stats.started_at = started
        while not stop.is_set():
            try:
                self.ingest(source.poll())
            except ZvtError as exc:
                if not exc.retryable:
                    raise
                # A venue hiccup or rate limit: keep the loop alive, the next poll may well succeed.
                stats.errors += 1
            stats.polls += 1
            stats.elapsed = time.monotonic() - started
            if count is not None and stats.polls >= count:
                break
            if duration is not None and stats.elapsed >= duration:
                break
            if interval > 0 and stop.wait(interval):
                break
        stats.elapsed = time.monotonic() - started
        return stats

    def seed_books(
        self,
        markets: Mapping[str, Market] | Iterable[Market],
        seed: int = 0,
        config: SyntheticConfig | None = None,
    ) -> list[Payload]:
        """Write one generated book and mark per market for ``self.venue`` (the demo calls this first, so
        the paper venue can fill and risk has a mark before the first order). Returns what was written."""
        cfg = (config or SyntheticConfig()).model_copy(update={"seed": seed, "venue": self.venue})
        first: list[Payload] = [
            p
            for p in SyntheticMarketData(markets, cfg).step()
            if isinstance(p, (OrderBookUpdated, PriceUpdated))
        ]
        self.ingest(first)
        return first


def read_book(client: redis.Redis, keys: Keys, venue: str, symbol: str) -> OrderBookUpdated | None:
    """The current book of one market as written by the ingester (or rewritten by the paper venue)."""
    raw = client.get(keys.book(venue, symbol))
    return None if raw is None else OrderBookUpdated.model_validate_json(raw)
