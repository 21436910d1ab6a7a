"""The venue interface: what the router and the execute step need from an exchange.

Two implementations: ``PaperVenue`` (the default, simulated on a Redis order book) and ``CcxtVenue`` (any
ccxt exchange). Both raise only the venue errors of ``zvt_pipeline.errors``:

- ``VenueRetryable``: nothing happened at the venue; the same call may succeed later.
- ``VenueTerminal``: the venue refused (bad symbol, invalid order, insufficient funds, auth); retrying is
  pointless.
- ``AmbiguousSubmit``: a submit's outcome is unknown (timeout, broken connection); look the order up by
  client order id before anything else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Literal

from zvt_pipeline.markets import Market
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.types import (
    ClientOrderId,
    Fee,
    Liquidity,
    Message,
    NonNegative,
    Quantity,
    Symbol,
    UtcDatetime,
    VenueId,
)

OrderStatus = Literal["open", "closed", "canceled"]
"""ccxt's unified order status, narrowed: ``expired`` and ``rejected`` count as ``canceled``."""


class VenueTrade(Message):
    """One fill of an order (ccxt's unified trade, reduced to what the portfolio needs)."""

    trade_id: str
    """Unique per venue; the portfolio applies each fill exactly once by it."""
    amount: Quantity
    price: Quantity
    fee: Fee
    liquidity: Liquidity
    timestamp: UtcDatetime


class VenueOrder(Message):
    """An order as the venue knows it, with every fill so far (oldest first)."""

    venue: VenueId
    venue_order_id: str
    client_order_id: ClientOrderId
    symbol: Symbol
    status: OrderStatus
    amount: Quantity
    filled: NonNegative
    remaining: NonNegative
    average: NonNegative | None = None
    """Volume-weighted average fill price; ``None`` before the first fill."""
    trades: tuple[VenueTrade, ...] = ()


class BestBidAsk(Message):
    bid: Quantity | None = None
    ask: Quantity | None = None


class Venue(ABC):
    """An exchange the execute step can route to. Implementations are safe to call from one thread."""

    @property
    @abstractmethod
    def id(self) -> str:
        """The venue id used in events (``paper``, ``binance``, ...)."""

    @abstractmethod
    def markets(self) -> dict[str, Market]:
        """Markets listed on the venue, by unified symbol (loaded once and cached)."""

    @abstractmethod
    def best_bid_ask(self, symbol: str) -> BestBidAsk:
        """Top of the book now. Raises ``VenueRetryable`` when no quote can be read."""

    @abstractmethod
    def free_balance(self, account_id: str, currency: str) -> Decimal | None:
        """Free balance of ``currency`` on the venue, or ``None`` when unknown."""

    @abstractmethod
    def create_order(self, order: OrderSpec) -> VenueOrder:
        """Submit ``order`` with its ``client_order_id``. Creating an id that already exists returns the
        existing order (venue-side dedupe), never a second order."""

    @abstractmethod
    def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """The order with this client order id, or ``None`` when the venue has no such order."""

    @abstractmethod
    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """Cancel an open order; returns its final state (``None`` when the venue has no such order)."""

    def market(self, symbol: str) -> Market | None:
        return self.markets().get(symbol)
