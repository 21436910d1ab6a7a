"""The paper venue (default): realistic simulated execution on the order book that market data keeps in Redis.

- Book: ``keys.book(venue, symbol)`` holds an ``OrderBookUpdated`` payload's JSON (bids and asks best
  first), written by the market-data ingester. Matching rules are in ``matching.py`` (one fill per level
  consumed; VWAP as the order's ``average``; FOK all-or-nothing; GTC limit remainders rest).
- Consumed liquidity is removed from the stored book in the same atomic transaction (WATCH/MULTI) that
  records the order, so the next order sees the moved book and two processes never fill on the same depth.
- Resting GTC limit orders fill as maker in ``match_resting(symbol)``, which the ingester calls after each
  book update.
- Idempotent by client order id: creating an existing id returns the stored order.
- Deterministic: venue order ids come from ``(seed, venue, client order id)``, trade ids from ``(venue,
  client order id, n)``; matching has no randomness, so the same books, orders and clock give the same
  fills.
- Fees: market maker/taker rates, charged in the quote currency.
- Balances: the account cash in ``keys.balance(account)`` (written by the portfolio) is the free balance;
  the venue itself does not check funds (risk reserved them before routing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import redis
from pydantic import ValidationError

from zvt_pipeline.errors import VenueRetryable, VenueTerminal
from zvt_pipeline.execution.outcome import executed
from zvt_pipeline.execution.venues import matching
from zvt_pipeline.execution.venues.base import BestBidAsk, OrderStatus, Venue, VenueOrder, VenueTrade
from zvt_pipeline.markets import Market, load_markets_file
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import OrderBookUpdated, OrderExecuted
from zvt_pipeline.messages.types import Fee, Liquidity, Message, NonNegative, Side, utcnow
from zvt_pipeline.state.keys import Keys

ZERO = Decimal(0)


class PaperOrderRecord(Message):
    """What the paper venue stores per order."""

    spec: OrderSpec
    order: VenueOrder


class RestingFill(Message):
    """One maker fill of a resting order, from ``match_resting``. ``event(venue)`` gives the
    ``order.executed`` payload; ``status`` tells whether the order is now done (``closed``)."""

    order: OrderSpec
    venue_order_id: str
    trade: VenueTrade
    filled_total: NonNegative
    remaining: NonNegative
    status: OrderStatus

    def event(self, venue: str) -> OrderExecuted:
        return executed(self.order, venue, self.trade, self.filled_total)


def _load_book(raw: bytes | None, venue: str, symbol: str) -> OrderBookUpdated:
    if raw is None:
        raise VenueRetryable(f"{venue}: no order book for {symbol} yet (market data not received)")
    try:
        return OrderBookUpdated.model_validate_json(raw)
    except ValidationError as exc:
        raise VenueRetryable(
            f"{venue}: order book for {symbol} is unreadable: {exc.errors()[0]['msg']}"
        ) from None


class PaperVenue(Venue):
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        venue_id: str = "paper",
        markets: dict[str, Market] | None = None,
        seed: int = 0,
        clock: Callable[[], datetime] = utcnow,
        max_attempts: int = 100,
        closed_order_ttl_seconds: int = 7 * 86_400,
    ) -> None:
        """``markets`` default to the bundled ``data/markets.json``. ``max_attempts`` bounds the optimistic
        transaction retries under contention. Closed and canceled orders are kept
        ``closed_order_ttl_seconds`` (long enough for any retry or resume to find them)."""
        self._client = client
        self._keys = keys
        self._id = venue_id
        self._markets = markets if markets is not None else load_markets_file()
        self._seed = seed
        self._clock = clock
        self._max_attempts = max_attempts
        self._closed_ttl = closed_order_ttl_seconds

    # --- reads ------------------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    def markets(self) -> dict[str, Market]:
        return self._markets

    def book(self, symbol: str) -> OrderBookUpdated:
        return _load_book(self._client.get(self._keys.book(self._id, symbol)), self._id, symbol)

    def best_bid_ask(self, symbol: str) -> BestBidAsk:
        book = self.book(symbol)
        return BestBidAsk(
            bid=book.bids[0].price if book.bids else None, ask=book.asks[0].price if book.asks else None
        )

    def free_balance(self, account_id: str, currency: str) -> Decimal | None:
        raw = self._client.hget(self._keys.balance(account_id), currency)
        return None if raw is None else Decimal(raw.decode())

    def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        record = self._record(self._client.get(self._keys.paper_order(self._id, client_order_id)))
        return None if record is None else record.order

    # --- writes -----------------------------------------------------------------------------------------

    def create_order(self, order: OrderSpec) -> VenueOrder:
        market = self._market(order.symbol)
        order_key = self._keys.paper_order(self._id, order.client_order_id)
        book_key = self._keys.book(self._id, order.symbol)

        def attempt(pipe: Any) -> VenueOrder:
            pipe.watch(order_key, book_key)
            existing = self._record(pipe.get(order_key))
            if existing is not None:
                pipe.unwatch()
                return existing.order
            book = _load_book(pipe.get(book_key), self._id, order.symbol)
            result = matching.match_taker(order, book.bids, book.asks)
            now = self._clock()
            trades = tuple(
                self._trade(order.client_order_id, n, t, market.taker, Liquidity.TAKER, market.quote, now)
                for n, t in enumerate(result.takes, start=1)
            )
            filled = sum((t.amount for t in trades), ZERO)
            remaining = order.amount - filled
            status: OrderStatus = "closed" if remaining == 0 else ("open" if result.rests else "canceled")
            venue_order = VenueOrder(
                venue=self._id,
                venue_order_id=self._venue_order_id(order.client_order_id),
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                status=status,
                amount=order.amount,
                filled=filled,
                remaining=remaining,
                average=matching.vwap(result.takes),
                trades=trades,
            )
            pipe.multi()
            if trades:
                moved = book.model_copy(update={"bids": result.bids, "asks": result.asks})
                pipe.set(book_key, moved.model_dump_json())
            self._store(pipe, PaperOrderRecord(spec=order, order=venue_order))
            if status == "open":
                pipe.zadd(
                    self._keys.paper_resting(self._id, order.symbol),
                    {order.client_order_id: order.created_at.timestamp()},
                )
            pipe.execute()
            return venue_order

        return self._transact(attempt)

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        order_key = self._keys.paper_order(self._id, client_order_id)

        def attempt(pipe: Any) -> VenueOrder | None:
            pipe.watch(order_key)
            record = self._record(pipe.get(order_key))
            if record is None or record.order.status != "open":
                pipe.unwatch()
                return None if record is None else record.order
            done = record.order.model_copy(update={"status": "canceled"})
            pipe.multi()
            self._store(pipe, record.model_copy(update={"order": done}))
            pipe.zrem(self._keys.paper_resting(self._id, symbol), client_order_id)
            pipe.execute()
            return done

        return self._transact(attempt)

    def match_resting(self, symbol: str) -> list[RestingFill]:
        """Fill resting limit orders of ``symbol`` that the current book crosses, as maker, at their own
        price; consumed depth is removed from the book. Orders are served in price-time priority (best
        price first, then earliest). Returns the fills in the order they happened; call after every book
        update. Running it again on an unchanged book fills nothing."""
        market = self._market(symbol)
        book_key = self._keys.book(self._id, symbol)
        resting_key = self._keys.paper_resting(self._id, symbol)

        def attempt(pipe: Any) -> list[RestingFill]:
            pipe.watch(book_key, resting_key)
            coids = [c.decode() for c in pipe.zrange(resting_key, 0, -1)]
            if not coids:
                pipe.unwatch()
                return []
            order_keys = [self._keys.paper_order(self._id, c) for c in coids]
            pipe.watch(*order_keys)
            records = [r for r in (self._record(pipe.get(k)) for k in order_keys) if r is not None]
            raw_book = pipe.get(book_key)
            if raw_book is None:
                pipe.unwatch()
                return []
            book = _load_book(raw_book, self._id, symbol)
            bids, asks = book.bids, book.asks
            now = self._clock()
            out: list[RestingFill] = []
            updated: list[PaperOrderRecord] = []
            for record in sorted(records, key=_priority):
                spec, vo = record.spec, record.order
                if vo.status != "open" or spec.price is None:
                    continue
                opposite = asks if spec.side is Side.BUY else bids
                takes, left = matching.match_maker(spec.side, spec.price, vo.remaining, opposite)
                if not takes:
                    continue
                if spec.side is Side.BUY:
                    asks = left
                else:
                    bids = left
                trades = list(vo.trades)
                filled = vo.filled
                new_fills: list[tuple[VenueTrade, Decimal]] = []
                for take in takes:
                    trade = self._trade(
                        spec.client_order_id,
                        len(trades) + 1,
                        take,
                        market.maker,
                        Liquidity.MAKER,
                        market.quote,
                        now,
                    )
                    trades.append(trade)
                    filled += trade.amount
                    new_fills.append((trade, filled))
                remaining = vo.amount - filled
                status: OrderStatus = "closed" if remaining == 0 else "open"
                all_takes = [matching.Take(t.price, t.amount) for t in trades]
                vo = vo.model_copy(
                    update={
                        "trades": tuple(trades),
                        "filled": filled,
                        "remaining": remaining,
                        "status": status,
                        "average": matching.vwap(all_takes),
                    }
                )
                updated.append(record.model_copy(update={"order": vo}))
                out.extend(
                    RestingFill(
                        order=spec,
                        venue_order_id=vo.venue_order_id,
                        trade=trade,
                        filled_total=total,
                        remaining=spec.amount - total,
                        status="closed" if total == spec.amount else "open",
                    )
                    for trade, total in new_fills
                )
            if not updated:
                pipe.unwatch()
                return []
            pipe.multi()
            pipe.set(book_key, book.model_copy(update={"bids": bids, "asks": asks}).model_dump_json())
            for record in updated:
                self._store(pipe, record)
                if record.order.status != "open":
                    pipe.zrem(resting_key, record.spec.client_order_id)
            pipe.execute()
            return out

        return self._transact(attempt)

    # --- helpers ----------------------------------------------------------------------------------------

    def _market(self, symbol: str) -> Market:
        market = self._markets.get(symbol)
        if market is None:
            raise VenueTerminal(f"{self._id}: symbol {symbol} is not listed")
        return market

    def _transact(self, attempt: Callable[[Any], Any]) -> Any:
        for _ in range(self._max_attempts):
            with self._client.pipeline() as pipe:
                try:
                    return attempt(pipe)
                except redis.WatchError:
                    continue
        raise VenueRetryable(
            f"{self._id}: order book contention, gave up after {self._max_attempts} attempts"
        )

    def _store(self, pipe: Any, record: PaperOrderRecord) -> None:
        key = self._keys.paper_order(self._id, record.spec.client_order_id)
        ttl = None if record.order.status == "open" else self._closed_ttl
        pipe.set(key, record.model_dump_json(), ex=ttl)

    @staticmethod
    def _record(raw: bytes | None) -> PaperOrderRecord | None:
        return None if raw is None else PaperOrderRecord.model_validate_json(raw)

    def _venue_order_id(self, client_order_id: str) -> str:
        digest = hashlib.sha256(f"{self._seed}:{self._id}:{client_order_id}".encode()).hexdigest()
        return f"P{digest[:20]}"

    def _trade(
        self,
        client_order_id: str,
        n: int,
        take: matching.Take,
        rate: Decimal,
        liquidity: Liquidity,
        quote: str,
        now: datetime,
    ) -> VenueTrade:
        return VenueTrade(
            trade_id=f"{self._id}-{client_order_id}-{n}",
            amount=take.amount,
            price=take.price,
            fee=Fee(cost=matching.fee_cost(take.price, take.amount, rate), currency=quote),
            liquidity=liquidity,
            timestamp=now,
        )


def _priority(record: PaperOrderRecord) -> tuple[int, Decimal, float, str]:
    """Buys before sells (they never compete for the same side); best price first; then oldest."""
    spec = record.spec
    price = spec.price or ZERO
    if spec.side is Side.BUY:
        return (0, -price, spec.created_at.timestamp(), spec.client_order_id)
    return (1, price, spec.created_at.timestamp(), spec.client_order_id)
