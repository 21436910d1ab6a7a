"""Market data from a real exchange through ccxt: REST polling (``fetch_*``) or ccxt.pro websockets (``watch_*``).

ccxt is imported only when an exchange is built (``import ccxt`` loads every exchange, ~0.5 s). ccxt hands
numbers over as floats; each goes through ``str`` into ``Decimal`` (the shortest repr of the float, which
is the text the exchange sent for any price with up to 15 significant digits).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from zvt_pipeline.errors import ConfigError, VenueRetryable, VenueTerminal
from zvt_pipeline.marketdata.config import CcxtSourceConfig
from zvt_pipeline.messages.events import BookLevel, OrderBookUpdated, Payload, PriceUpdated, TradeTick
from zvt_pipeline.messages.types import Side, utcnow

_TWO = Decimal(2)


# --- conversion: ccxt unified structures -> payloads (pure) ---------------------------------------------


def to_decimal(value: Any) -> Decimal | None:
    """A ccxt number (float, int or numeric string) as an exact Decimal; None stays None."""
    if value is None:
        return None
    return Decimal(str(value))


def from_ms(timestamp_ms: Any) -> datetime:
    """A ccxt millisecond timestamp as a UTC datetime; missing -> now (Binance's spot depth has none)."""
    if timestamp_ms is None:
        return utcnow()
    return datetime.fromtimestamp(int(timestamp_ms) / 1000, tz=UTC)


def _levels(raw: Iterable[Sequence[Any]]) -> tuple[BookLevel, ...]:
    out = []
    for level in raw:
        price, amount = to_decimal(level[0]), to_decimal(level[1])
        # Some venues send zero-size levels (deletions) in snapshots; they are not liquidity.
        if price is not None and amount is not None and price > 0 and amount > 0:
            out.append(BookLevel(price=price, amount=amount))
    return tuple(out)


def book_from_ccxt(venue: str, symbol: str, book: dict[str, Any], sequence: int) -> OrderBookUpdated:
    """ccxt order book -> ``OrderBookUpdated``; bids best (highest) first, asks best (lowest) first."""
    bids = sorted(_levels(book.get("bids") or ()), key=lambda lv: lv.price, reverse=True)
    asks = sorted(_levels(book.get("asks") or ()), key=lambda lv: lv.price)
    return OrderBookUpdated(
        venue=venue,
        symbol=symbol,
        bids=tuple(bids),
        asks=tuple(asks),
        timestamp=from_ms(book.get("timestamp")),
        sequence=sequence,
    )


def price_from_quotes(
    venue: str, symbol: str, bid: Decimal | None, ask: Decimal | None, last: Decimal | None, at: datetime
) -> PriceUpdated | None:
    """Mark = mid of bid/ask when both are there, else the last trade; None when neither is known."""
    bid = bid if bid is not None and bid > 0 else None
    ask = ask if ask is not None and ask > 0 else None
    if bid is not None and ask is not None:
        mark: Decimal | None = (bid + ask) / _TWO
    else:
        mark = last if last is not None and last > 0 else None
    if mark is None:
        return None
    return PriceUpdated(venue=venue, symbol=symbol, price=mark, bid=bid, ask=ask, timestamp=at)


def price_from_ticker(venue: str, symbol: str, ticker: dict[str, Any]) -> PriceUpdated | None:
    return price_from_quotes(
        venue,
        symbol,
        to_decimal(ticker.get("bid")),
        to_decimal(ticker.get("ask")),
        to_decimal(ticker.get("last")),
        from_ms(ticker.get("timestamp")),
    )


def price_from_book(book: OrderBookUpdated) -> PriceUpdated | None:
    bid = book.bids[0].price if book.bids else None
    ask = book.asks[0].price if book.asks else None
    return price_from_quotes(book.venue, book.symbol, bid, ask, None, book.timestamp)


def trade_from_ccxt(venue: str, symbol: str, trade: dict[str, Any]) -> TradeTick | None:
    """ccxt public trade -> ``TradeTick`` (side = the taker's side); None if it lacks id, price or amount."""
    price, amount = to_decimal(trade.get("price")), to_decimal(trade.get("amount"))
    trade_id, side = trade.get("id"), trade.get("side")
    if trade_id is None or price is None or amount is None or price <= 0 or amount <= 0:
        return None
    return TradeTick(
        venue=venue,
        symbol=symbol,
        trade_id=str(trade_id),
        price=price,
        amount=amount,
        side=Side.SELL if side == "sell" else Side.BUY,
        timestamp=from_ms(trade.get("timestamp")),
    )


# --- the source -----------------------------------------------------------------------------------------


def ccxt_pro_available() -> bool:
    try:
        import ccxt.pro  # noqa: F401
    except ImportError:
        return False
    return True


def _exchange_options(config: CcxtSourceConfig) -> dict[str, Any]:
    return {"enableRateLimit": config.enable_rate_limit, "timeout": config.timeout_ms}


def create_exchange(config: CcxtSourceConfig, *, pro: bool = False) -> Any:
    """A ccxt (or ccxt.pro) exchange object for ``config.exchange_id``, with the rate limiter as configured."""
    if pro:
        import ccxt.pro as module
    else:
        import ccxt as module
    cls = getattr(module, config.exchange_id, None)
    if cls is None:
        where = "ccxt.pro" if pro else "ccxt"
        raise ConfigError(f"exchange: {where} has no exchange {config.exchange_id!r}")
    exchange = cls(_exchange_options(config))
    if config.sandbox:
        exchange.set_sandbox_mode(True)
    return exchange


def _venue_error(exc: Exception) -> Exception:
    """ccxt's unified errors -> ours: network trouble (incl. rate limits) may pass, the rest will not."""
    import ccxt

    if isinstance(exc, ccxt.NetworkError):
        return VenueRetryable(f"{type(exc).__name__}: {exc}")
    return VenueTerminal(f"{type(exc).__name__}: {exc}")


class CcxtMarketData:
    """Market data of ``config.symbols`` on one ccxt exchange, as payloads.

    ``poll()`` (a ``MarketDataSource``) fetches, per symbol, the book, the ticker (for the mark's bid/ask)
    and the public trades not seen before. ``watch()`` streams books over ccxt.pro websockets instead.
    ``exchange`` may be given (tests hand in a real ccxt object with canned responses); otherwise it is
    built from ``config`` on first use.
    """

    def __init__(self, config: CcxtSourceConfig | None = None, exchange: Any = None) -> None:
        self.config = config or CcxtSourceConfig()
        self.venue = self.config.venue_id
        self._exchange = exchange
        self._sequence: dict[str, int] = {}
        # Trade ids already emitted, per symbol; bounded, since a poll only returns the latest trades.
        self._seen: dict[str, deque[str]] = {}
        self._seen_set: dict[str, set[str]] = {}

    @property
    def exchange(self) -> Any:
        if self._exchange is None:
            self._exchange = create_exchange(self.config)
        return self._exchange

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.config.symbols

    def poll(self) -> list[Payload]:
        out: list[Payload] = []
        for symbol in self.config.symbols:
            out.extend(self.fetch_symbol(symbol))
        return out

    def fetch_symbol(self, symbol: str) -> list[Payload]:
        """Book, mark and new trades of one symbol. ccxt errors become ``VenueRetryable`` / ``VenueTerminal``."""
        import ccxt

        try:
            raw_book = self.exchange.fetch_order_book(symbol, self.config.depth)
            ticker = self.exchange.fetch_ticker(symbol) if self.config.with_ticker else None
            trades = (
                self.exchange.fetch_trades(symbol, limit=self.config.trades_limit)
                if self.config.with_trades
                else []
            )
        except ccxt.BaseError as exc:
            raise _venue_error(exc) from exc
        book = book_from_ccxt(self.venue, symbol, raw_book, self._next_sequence(symbol, raw_book))
        price = price_from_ticker(self.venue, symbol, ticker) if ticker else None
        price = price or price_from_book(book)
        out: list[Payload] = [book]
        if price is not None:
            out.append(price)
        out.extend(self._new_trades(symbol, trades))
        return out

    async def watch(self, exchange: Any = None) -> AsyncGenerator[list[Payload], None]:
        """Endless: after each websocket book update of any symbol, ``[OrderBookUpdated, PriceUpdated]``.

        Needs ccxt.pro (shipped inside ccxt >= 4). The exchange is closed when the iterator is closed.
        """
        pro = exchange if exchange is not None else create_exchange(self.config, pro=True)
        queue: asyncio.Queue[list[Payload] | BaseException] = asyncio.Queue(maxsize=1000)

        async def follow(symbol: str) -> None:
            try:
                while True:
                    raw = await pro.watch_order_book(symbol, self.config.depth)
                    book = book_from_ccxt(self.venue, symbol, raw, self._next_sequence(symbol, raw))
                    price = price_from_book(book)
                    await queue.put([book] if price is None else [book, price])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await queue.put(exc)

        tasks = [asyncio.create_task(follow(s)) for s in self.config.symbols]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    import ccxt

                    raise _venue_error(item) if isinstance(item, ccxt.BaseError) else item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            close = getattr(pro, "close", None)
            if close is not None:
                await close()

    def close(self) -> None:
        close = getattr(self._exchange, "close", None)
        if close is not None:
            close()

    def _next_sequence(self, symbol: str, raw_book: dict[str, Any]) -> int:
        """The exchange's book sequence (``nonce``, Binance's ``lastUpdateId``) when it sends one, else a
        local counter; never goes backwards for one symbol."""
        previous = self._sequence.get(symbol, 0)
        nonce = raw_book.get("nonce")
        seq = int(nonce) if isinstance(nonce, int) and nonce > previous else previous + 1
        self._sequence[symbol] = seq
        return seq

    def _new_trades(self, symbol: str, trades: Iterable[dict[str, Any]]) -> list[TradeTick]:
        seen = self._seen.setdefault(symbol, deque())
        seen_set = self._seen_set.setdefault(symbol, set())
        out = []
        for raw in trades:
            tick = trade_from_ccxt(self.venue, symbol, raw)
            if tick is None or tick.trade_id in seen_set:
                continue
            out.append(tick)
            seen.append(tick.trade_id)
            seen_set.add(tick.trade_id)
        while len(seen) > 4 * self.config.trades_limit:
            seen_set.discard(seen.popleft())
        return out
