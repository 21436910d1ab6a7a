"""Field types shared by commands and events.

Money is ``Decimal`` everywhere: floats never enter the pipeline (a JSON number is parsed through its text,
never through a binary float). NaN and infinities are rejected, and so is absurd precision.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_DECIMAL_PLACES = 18


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone (UTC)")
    return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are rejected."""

Quantity = Annotated[
    Decimal, Field(gt=0, allow_inf_nan=False, max_digits=38, decimal_places=MAX_DECIMAL_PLACES)
]
"""A strictly positive amount or price."""

Money = Annotated[Decimal, Field(allow_inf_nan=False, max_digits=38, decimal_places=MAX_DECIMAL_PLACES)]
"""A signed decimal amount (PnL, cash, a signed position)."""

NonNegative = Annotated[
    Decimal, Field(ge=0, allow_inf_nan=False, max_digits=38, decimal_places=MAX_DECIMAL_PLACES)
]


def _matching(pattern: str, what: str) -> AfterValidator:
    """A pattern check whose error says what was expected, in words (not the regex)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value[:80]!r} is not {what}")
        return value

    return AfterValidator(check)


Symbol = Annotated[
    str, _matching(r"[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?", "a ccxt unified symbol like BTC/USDT")
]
"""A ccxt unified symbol, e.g. ``BTC/USDT`` (spot) or ``BTC/USDT:USDT`` (linear swap)."""

AccountId = Annotated[str, _matching(r"[A-Za-z0-9_.-]{1,64}", "an account id (1-64 of A-Z a-z 0-9 _ . -)")]
ClientOrderId = Annotated[
    str, _matching(r"[A-Za-z0-9_-]{1,36}", "a client order id (1-36 of A-Z a-z 0-9 _ -)")
]
"""36 characters at most: Binance's limit for ``newClientOrderId``, the tightest among major venues."""
VenueId = Annotated[str, _matching(r"[a-z0-9_]{1,32}", "a venue id (1-32 of a-z 0-9 _)")]


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Message(BaseModel):
    """Base of every command, event payload and nested value: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class Fee(Message):
    """ccxt's unified fee structure."""

    cost: NonNegative
    currency: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}$")]


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTC/USDT`` -> (``BTC``, ``USDT``); the settle suffix of a swap symbol is dropped."""
    base, _, rest = symbol.partition("/")
    return base, rest.split(":", 1)[0]
