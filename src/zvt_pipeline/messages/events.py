"""Event payloads (past tense). Each payload class names its dotted ``TYPE`` and its ``SCHEMA_VERSION``.

Order lifecycle events carry the whole ``OrderSpec`` so every step can run from the event alone.
A fill (``order.executed``) uses ccxt's unified trade fields.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.types import (
    AccountId,
    ClientOrderId,
    Fee,
    Liquidity,
    Message,
    Money,
    NonNegative,
    Quantity,
    Side,
    Symbol,
    TradingState,
    UtcDatetime,
    VenueId,
    utcnow,
)

Text = Annotated[str, Field(max_length=2000)]


class Payload(Message):
    TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1


# --- orders ---------------------------------------------------------------------------------------------


class OrderRequested(Payload):
    TYPE = "order.requested"
    order: OrderSpec


class Reservation(Message):
    """Funds or position held back by risk until the order fills, is rejected, canceled or fails."""

    currency: str
    amount: NonNegative


class OrderValidated(Payload):
    TYPE = "order.validated"
    order: OrderSpec
    reservation: Reservation
    checks: tuple[str, ...] = ()
    """Names of the risk rules that passed, in order."""


class OrderRejected(Payload):
    TYPE = "order.rejected"
    client_order_id: ClientOrderId
    account_id: AccountId
    symbol: Symbol
    rule: str
    """The risk rule that denied the order, e.g. ``max_notional``."""
    reason: Text
    """Human-readable, with the numbers: ``notional 70000 USDT > max 50000 USDT``."""
    details: dict[str, str] = Field(default_factory=dict)


class VenueQuote(Message):
    venue: VenueId
    price: Money | None
    effective_price: Money | None
    healthy: bool
    balance_ok: bool
    note: str = ""


class OrderRouted(Payload):
    TYPE = "order.routed"
    order: OrderSpec
    reservation: Reservation
    venue: VenueId
    reason: Text
    candidates: tuple[VenueQuote, ...] = ()


class OrderSubmitted(Payload):
    TYPE = "order.submitted"
    order: OrderSpec
    venue: VenueId
    venue_order_id: str
    status: Literal["open", "closed", "canceled"] = "open"


class OrderExecuted(Payload):
    """One fill. ``trade_id`` is unique per venue; the portfolio applies each fill exactly once by it."""

    TYPE = "order.executed"
    trade_id: str
    client_order_id: ClientOrderId
    account_id: AccountId
    venue: VenueId
    symbol: Symbol
    side: Side
    amount: Quantity
    price: Quantity
    fee: Fee
    timestamp: UtcDatetime
    liquidity: Liquidity = Liquidity.TAKER
    order_amount: Quantity | None = None
    filled_total: NonNegative | None = None
    """Cumulative filled amount of the order after this fill."""


class OrderCanceled(Payload):
    TYPE = "order.canceled"
    client_order_id: ClientOrderId
    account_id: AccountId
    symbol: Symbol | None = None
    venue: VenueId | None = None
    filled: NonNegative = Decimal(0)
    remaining: NonNegative = Decimal(0)
    reason: Text = ""


class OrderFailed(Payload):
    TYPE = "order.failed"
    client_order_id: ClientOrderId
    account_id: AccountId
    symbol: Symbol | None = None
    venue: VenueId | None = None
    error_code: str
    reason: Text
    retryable: bool = False


class OrderUnknown(Payload):
    """Submit outcome is ambiguous (timeout): the order must be looked up by client_order_id."""

    TYPE = "order.unknown"
    order: OrderSpec
    venue: VenueId
    reason: Text


# --- portfolio and risk ---------------------------------------------------------------------------------


class PositionUpdated(Payload):
    TYPE = "position.updated"
    account_id: AccountId
    venue: VenueId
    symbol: Symbol
    trade_id: str
    amount: Money
    """Signed: positive long, negative short."""
    avg_entry_price: NonNegative
    realized_pnl: Money
    """Cumulative realized PnL of this position, in quote currency, net of fees paid in quote or base
    currency (a base-currency fee valued at the fill price)."""
    fees_paid: dict[str, NonNegative] = Field(default_factory=dict)
    balances: dict[str, Money] = Field(default_factory=dict)
    """Cash balances of the account after this fill, per currency."""
    sequence: int | None = None
    """This was the n-th fill applied to the account. Average-cost accounting depends on the order fills
    are applied in, and concurrent workers may apply them in another order than the global log holds
    them: a rebuild replays fills in this order to reproduce the live state exactly."""


class BalanceDeposited(Payload):
    """Cash paid into an account (funding, demos, tests). The portfolio rebuild replays it."""

    TYPE = "balance.deposited"
    account_id: AccountId
    currency: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}$")]
    amount: Quantity


class PortfolioRebalanced(Payload):
    TYPE = "portfolio.rebalanced"
    account_id: AccountId
    targets: dict[Symbol, Decimal]
    achieved: dict[Symbol, Decimal]
    orders: tuple[ClientOrderId, ...] = ()
    status: Literal["completed", "partial", "failed"] = "completed"


class RiskBreached(Payload):
    TYPE = "risk.breached"
    account_id: AccountId | None
    rule: str
    value: Money
    limit: Money
    action: TradingState
    reason: Text


class AlertTriggered(Payload):
    TYPE = "alert.triggered"
    severity: Literal["info", "warning", "critical"]
    source: str
    message: Text
    account_id: AccountId | None = None
    details: dict[str, str] = Field(default_factory=dict)


class TradingStateChanged(Payload):
    TYPE = "trading_state.changed"
    state: TradingState
    account_id: AccountId | None = None
    reason: Text = ""


# --- market data ----------------------------------------------------------------------------------------


class PriceUpdated(Payload):
    TYPE = "price.updated"
    venue: VenueId
    symbol: Symbol
    price: Quantity
    """The mark: mid of best bid/ask, or last trade when there is no book."""
    bid: Quantity | None = None
    ask: Quantity | None = None
    timestamp: UtcDatetime = Field(default_factory=utcnow)


class BookLevel(Message):
    price: Quantity
    amount: Quantity


class OrderBookUpdated(Payload):
    TYPE = "orderbook.updated"
    venue: VenueId
    symbol: Symbol
    bids: tuple[BookLevel, ...]
    """Best (highest) first."""
    asks: tuple[BookLevel, ...]
    """Best (lowest) first."""
    timestamp: UtcDatetime = Field(default_factory=utcnow)
    sequence: int = 0


class TradeTick(Payload):
    TYPE = "trade.tick"
    venue: VenueId
    symbol: Symbol
    trade_id: str
    price: Quantity
    amount: Quantity
    side: Side
    timestamp: UtcDatetime = Field(default_factory=utcnow)


# --- workflows ------------------------------------------------------------------------------------------

Outcome = Literal["filled", "partially_filled", "open", "rejected", "canceled", "failed", "unknown"]


class WorkflowStarted(Payload):
    TYPE = "workflow.started"
    run_id: str
    workflow: str = "trading.place_order"
    client_order_id: ClientOrderId | None = None
    account_id: AccountId | None = None
    invoker: Literal["streams", "hatchet", "lambda", "inprocess"] = "streams"


class WorkflowCompleted(Payload):
    TYPE = "workflow.completed"
    run_id: str
    outcome: Outcome
    summary: dict[str, Any] = Field(default_factory=dict)


class WorkflowFailed(Payload):
    TYPE = "workflow.failed"
    run_id: str
    step: str
    error_code: str
    reason: Text
    retryable: bool = False


def _registry(*classes: type[Payload]) -> dict[str, type[Payload]]:
    out: dict[str, type[Payload]] = {}
    for cls in classes:
        assert cls.TYPE and cls.TYPE not in out, cls
        out[cls.TYPE] = cls
    return out


EVENT_TYPES: dict[str, type[Payload]] = _registry(
    OrderRequested,
    OrderValidated,
    OrderRejected,
    OrderRouted,
    OrderSubmitted,
    OrderExecuted,
    OrderCanceled,
    OrderFailed,
    OrderUnknown,
    PositionUpdated,
    BalanceDeposited,
    PortfolioRebalanced,
    RiskBreached,
    AlertTriggered,
    TradingStateChanged,
    PriceUpdated,
    OrderBookUpdated,
    TradeTick,
    WorkflowStarted,
    WorkflowCompleted,
    WorkflowFailed,
)
"""Dotted type name -> payload class. The codec decodes through this table."""
