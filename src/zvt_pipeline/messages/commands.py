"""Commands: requests to do something (verbs). A command may be rejected; an event is a fact."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, model_validator

from zvt_pipeline.messages.types import (
    AccountId,
    ClientOrderId,
    Message,
    OrderType,
    Quantity,
    Side,
    Symbol,
    TimeInForce,
    TradingState,
    UtcDatetime,
    VenueId,
    utcnow,
)


class OrderSpec(Message):
    """An order intent with ccxt's unified field names. Carried by every order lifecycle event."""

    client_order_id: ClientOrderId
    account_id: AccountId
    symbol: Symbol
    side: Side
    type: OrderType
    amount: Quantity
    price: Quantity | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    venue: VenueId | None = None
    """Preferred venue; ``None`` lets the router choose."""
    created_at: UtcDatetime = Field(default_factory=utcnow)
    ttl_seconds: Annotated[int, Field(ge=1, le=86_400)] = 30
    """The intent is stale (rejected by risk) once ``created_at + ttl_seconds`` has passed."""

    @model_validator(mode="after")
    def _price_matches_type(self) -> OrderSpec:
        if self.type is OrderType.LIMIT and self.price is None:
            raise ValueError("price: a limit order needs a price")
        if self.type is OrderType.MARKET and self.price is not None:
            raise ValueError("price: a market order takes no price")
        return self

    @property
    def notional_hint(self) -> Decimal | None:
        return self.amount * self.price if self.price is not None else None


class SubmitOrder(OrderSpec):
    """Place an order. ``client_order_id`` doubles as the workflow's idempotency key."""


class CancelOrder(Message):
    client_order_id: ClientOrderId
    account_id: AccountId
    reason: Annotated[str, Field(max_length=200)] = "user request"


class RebalancePortfolio(Message):
    """Move an account to target weights (fractions of equity, summing to <= 1; the rest stays in cash)."""

    account_id: AccountId
    targets: dict[Symbol, Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]]
    venue: VenueId | None = None
    quote_currency: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}$")] = "USDT"

    @model_validator(mode="after")
    def _weights_sum(self) -> RebalancePortfolio:
        total = sum(self.targets.values(), Decimal(0))
        if total > 1:
            raise ValueError(f"targets: weights sum to {total}, more than 1")
        return self


class SetTradingState(Message):
    """Move trading to ACTIVE / REDUCING / HALTED, globally (``account_id`` None) or for one account."""

    state: TradingState
    account_id: AccountId | None = None
    reason: Annotated[str, Field(max_length=200)] = ""
