"""Choose the venue for a validated order, and say why.

Among the configured venues that list the symbol (or only the order's preferred venue, when it names one):

1. health: the venue's circuit breaker must allow orders;
2. quote: the venue must show a price on the side the order takes (best ask for a buy, best bid for a sell);
3. balance: the venue's free balance must cover the order (quote currency for a buy: amount x limit or ask
   x (1 + taker); base currency for a sell: the amount). An unknown balance passes unless
   ``RouterConfig.require_known_balance``;
4. price: the best EFFECTIVE price wins: ask x (1 + taker) for buys (lowest), bid x (1 - taker) for sells
   (highest); ties go to the venue configured first.

The result is ``order.routed`` with a one-line ``reason`` and every venue's ``VenueQuote``, or
``order.failed`` with ``error_code="no_route"`` and the reasons each venue was passed over.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from zvt_pipeline.errors import VenueError
from zvt_pipeline.execution.circuit import CircuitBreakers
from zvt_pipeline.execution.config import RouterConfig
from zvt_pipeline.execution.venues.base import Venue
from zvt_pipeline.messages.events import OrderFailed, OrderRouted, OrderValidated, VenueQuote
from zvt_pipeline.messages.types import OrderType, Side, split_symbol


class Router:
    def __init__(
        self, venues: Mapping[str, Venue], breakers: CircuitBreakers, config: RouterConfig | None = None
    ) -> None:
        """``venues`` in tie-break order (dicts keep insertion order)."""
        self._venues = venues
        self._breakers = breakers
        self._config = config or RouterConfig()

    def route(self, validated: OrderValidated) -> OrderRouted | OrderFailed:
        order = validated.order
        names = [order.venue] if order.venue else list(self._venues)
        quotes = [self._quote(validated, name) for name in names]
        eligible = [q for q in quotes if q.healthy and q.balance_ok and q.effective_price is not None]
        if not eligible:
            why = "; ".join(f"{q.venue}: {q.note}" for q in quotes) or "no venues configured"
            return OrderFailed(
                client_order_id=order.client_order_id,
                account_id=order.account_id,
                symbol=order.symbol,
                venue=order.venue,
                error_code="no_route",
                reason=f"no eligible venue for {order.side.value} {order.amount} {order.symbol}: {why}",
                retryable=False,
            )
        buy = order.side is Side.BUY
        best = eligible[0]
        for q in eligible[1:]:
            assert q.effective_price is not None and best.effective_price is not None
            if (
                (q.effective_price < best.effective_price)
                if buy
                else (q.effective_price > best.effective_price)
            ):
                best = q
        side_word = "ask" if buy else "bid"
        others = [q for q in quotes if q.venue != best.venue]
        reason = f"{best.venue}: best effective {side_word} {best.effective_price} ({best.note})"
        if others:
            reason += "; others: " + "; ".join(
                f"{q.venue} {q.effective_price} ({q.note})"
                if q.effective_price is not None and q.healthy and q.balance_ok
                else f"{q.venue} passed over ({q.note})"
                for q in others
            )
        return OrderRouted(
            order=order,
            reservation=validated.reservation,
            venue=best.venue,
            reason=reason[:2000],
            candidates=tuple(quotes),
        )

    def _quote(self, validated: OrderValidated, name: str) -> VenueQuote:
        order = validated.order
        venue = self._venues.get(name)
        if venue is None:
            return _unquoted(name, "not configured", healthy=False)
        try:
            market = venue.market(order.symbol)
        except VenueError as exc:
            if exc.retryable:
                self._breakers.record_failure(name)
            return _unquoted(name, f"markets unavailable: {exc}"[:300], healthy=False)
        if market is None or not market.active:
            return _unquoted(name, f"{order.symbol} not listed", healthy=True)
        if not self._breakers.allow(name):
            return _unquoted(name, f"circuit {self._breakers.state(name).value}", healthy=False)
        buy = order.side is Side.BUY
        try:
            bba = venue.best_bid_ask(order.symbol)
        except VenueError as exc:
            if exc.retryable:
                self._breakers.record_failure(name)
            return _unquoted(name, f"no quote: {exc}"[:300], healthy=not exc.retryable)
        price = bba.ask if buy else bba.bid
        if price is None:
            return _unquoted(name, f"no {'asks' if buy else 'bids'} in the book", healthy=True)
        fee = market.taker
        effective = price * (1 + fee) if buy else price * (1 - fee)
        note = f"{'ask' if buy else 'bid'} {price} {'+' if buy else '-'} taker {_fmt(fee * 100)}%"
        base, quote = split_symbol(order.symbol)
        if buy:
            unit = order.price if order.type is OrderType.LIMIT and order.price is not None else price
            need, currency = order.amount * unit * (1 + fee), quote
        else:
            need, currency = order.amount, base
        balance_ok, balance_note = self._balance_ok(venue, order.account_id, currency, need)
        return VenueQuote(
            venue=name,
            price=price,
            effective_price=effective,
            healthy=True,
            balance_ok=balance_ok,
            note=f"{note}; {balance_note}",
        )

    def _balance_ok(self, venue: Venue, account_id: str, currency: str, need: Decimal) -> tuple[bool, str]:
        try:
            free = venue.free_balance(account_id, currency)
        except VenueError as exc:
            return (not self._config.require_known_balance, f"balance unavailable ({type(exc).__name__})")
        if free is None:
            return (not self._config.require_known_balance, f"{currency} balance unknown")
        if free < need:
            return False, f"free {free} {currency} < needed {_fmt(need)} {currency}"
        return True, f"free {free} {currency} >= {_fmt(need)}"


def _fmt(value: Decimal) -> str:
    """Plain decimal text without trailing zeros or exponent (``100``, not ``1E+2``)."""
    return format(value.normalize(), "f")


def _unquoted(venue: str, note: str, *, healthy: bool) -> VenueQuote:
    """A candidate the router cannot price (not configured, not listed, circuit open, no quote)."""
    return VenueQuote(
        venue=venue, price=None, effective_price=None, healthy=healthy, balance_ok=False, note=note
    )
