"""Pure order-book matching for the paper venue: no Redis, no clock, easy to test.

Fill model (documented choice): an order that takes liquidity gets ONE FILL PER BOOK LEVEL it consumes, at
that level's price (as Binance reports ``fills``); the order's ``average`` is the VWAP of those fills. A
resting limit order fills as maker at ITS OWN price when the book moves through it (the incoming taker
trades at the resting price). Our own resting orders never match each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import BookLevel
from zvt_pipeline.messages.types import OrderType, Side, TimeInForce

ZERO = Decimal(0)
PRICE_QUANTUM = Decimal("1e-12")
"""VWAP and fee costs are rounded to 12 decimal places (half-even) so they stay within the 18 places a
message accepts; level prices and amounts are never rounded."""


@dataclass(frozen=True, slots=True)
class Take:
    """Liquidity taken from one book level."""

    price: Decimal
    amount: Decimal


def _crosses(side: Side, level_price: Decimal, limit: Decimal | None) -> bool:
    if limit is None:
        return True
    return level_price <= limit if side is Side.BUY else level_price >= limit


def available(levels: Sequence[BookLevel], side: Side, limit: Decimal | None) -> Decimal:
    """Depth an order of ``side`` could take from the opposite ``levels`` within ``limit``."""
    total = ZERO
    for level in levels:
        if not _crosses(side, level.price, limit):
            break
        total += level.amount
    return total


def take(
    levels: Sequence[BookLevel], side: Side, amount: Decimal, limit: Decimal | None
) -> tuple[list[Take], tuple[BookLevel, ...]]:
    """Walk the opposite side of the book (best first) until ``amount`` is filled, depth runs out or a
    level no longer crosses ``limit``. Returns what was taken and the levels left (consumed liquidity
    removed, a partly consumed level shrunk)."""
    taken: list[Take] = []
    left: list[BookLevel] = []
    need = amount
    for i, level in enumerate(levels):
        if need <= 0 or not _crosses(side, level.price, limit):
            left.extend(levels[i:])
            break
        qty = min(need, level.amount)
        taken.append(Take(level.price, qty))
        need -= qty
        if qty < level.amount:
            left.append(BookLevel(price=level.price, amount=level.amount - qty))
    return taken, tuple(left)


@dataclass(frozen=True, slots=True)
class TakerResult:
    takes: list[Take]
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    rests: bool
    """True when the unfilled remainder stays on the book (GTC limit)."""


def match_taker(order: OrderSpec, bids: Sequence[BookLevel], asks: Sequence[BookLevel]) -> TakerResult:
    """Match a new order against the book, by type and time in force:

    - market: takes what the book has; the remainder is canceled (a market order never rests);
    - limit: takes the levels that cross its price; the remainder rests for GTC, is canceled for IOC;
    - FOK (market or limit): all or nothing, judged on the depth within the limit.
    """
    limit = order.price if order.type is OrderType.LIMIT else None
    opposite = asks if order.side is Side.BUY else bids
    if order.time_in_force is TimeInForce.FOK and available(opposite, order.side, limit) < order.amount:
        return TakerResult([], tuple(bids), tuple(asks), rests=False)
    takes, left = take(opposite, order.side, order.amount, limit)
    filled = sum((t.amount for t in takes), ZERO)
    rests = order.type is OrderType.LIMIT and order.time_in_force is TimeInForce.GTC and filled < order.amount
    if order.side is Side.BUY:
        return TakerResult(takes, tuple(bids), left, rests)
    return TakerResult(takes, left, tuple(asks), rests)


def match_maker(
    side: Side, price: Decimal, remaining: Decimal, opposite: Sequence[BookLevel]
) -> tuple[list[Take], tuple[BookLevel, ...]]:
    """Fill a resting limit order from opposite levels that now cross its price. Every fill is at the
    resting order's own price (it is the maker)."""
    takes, left = take(opposite, side, remaining, price)
    return [Take(price, t.amount) for t in takes], left


def vwap(takes: Sequence[Take]) -> Decimal | None:
    qty = sum((t.amount for t in takes), ZERO)
    if qty == 0:
        return None
    return (sum((t.price * t.amount for t in takes), ZERO) / qty).quantize(PRICE_QUANTUM)


def fee_cost(price: Decimal, amount: Decimal, rate: Decimal) -> Decimal:
    """Fee in quote currency: notional times the maker or taker rate."""
    return (price * amount * rate).quantize(PRICE_QUANTUM)
