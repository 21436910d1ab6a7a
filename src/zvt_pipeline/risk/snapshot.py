"""What the risk engine sees: one ``RiskSnapshot`` per order, read from Redis in a single round trip.

Sources (formats in ``state/keys.py``):
- trading state: ``keys.trading_state`` fields ``*`` (global) and the account id;
- positions: ``keys.position(account)``, ``"<venue>|<symbol>"`` -> JSON with a signed ``amount``;
- marks: ``keys.marks``, ``"<venue>|<symbol>"`` -> decimal text; a symbol's mark is taken from the
  order's venue when that venue has one, else from any venue (the lexically first, so it is stable);
- top of book: ``keys.book(venue, symbol)``, an ``OrderBookUpdated`` JSON, for the order's venue or, when
  the router still has to choose, for every candidate venue; across venues the snapshot keeps the least
  favourable top (highest best ask, lowest best bid), because the router may pick any of them;
- cash and amounts held by open orders: ``keys.balance(account)``, ``keys.reserved(account)``;
- the order index ``keys.order(coid)``, so a retried run finds its earlier decision in the same read.

Gross exposure is ``sum |amount| * mark`` over the account's positions, each valued at its symbol's mark
(its own ``avg_entry_price`` when no mark is known; positions in the order's symbol use the same mark as
the order's checks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any

import orjson
import redis

from zvt_pipeline.errors import StoreUnavailable
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.types import TradingState
from zvt_pipeline.state.keys import Keys

ZERO = Decimal(0)
EXACT = Context(prec=80)
"""Arithmetic context for money: sums and products of 38-digit decimals stay exact (the default context
keeps only 28 significant digits)."""
GLOBAL_STATE_FIELD = "*"

_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """Everything the pure engine needs about the world, for one order."""

    global_state: TradingState = TradingState.ACTIVE
    account_state: TradingState | None = None
    """The account's own state; ``None`` when none is set (the global state alone applies)."""
    mark: Decimal | None = None
    """Last mark of the order's symbol."""
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    position: Decimal = ZERO
    """Signed position of the account in the order's symbol, summed over venues (base currency)."""
    gross_exposure: Decimal = ZERO
    """Sum of ``|position| * mark`` over all of the account's positions (quote currency)."""
    balances: Mapping[str, Decimal] = field(default_factory=dict)
    """Cash per currency."""
    reserved: Mapping[str, Decimal] = field(default_factory=dict)
    """Held by open orders, per currency."""
    order_index: Mapping[str, str] = field(default_factory=dict)
    """The order index entry of the order's client_order_id (empty if the id is new)."""

    @property
    def trading_state(self) -> TradingState:
        """The stricter of the global and the account state."""
        if self.account_state is None:
            return self.global_state
        return max(self.global_state, self.account_state, key=_SEVERITY.__getitem__)

    @property
    def reference_mark(self) -> Decimal | None:
        """The mark, or the mid of the book when no mark is known."""
        if self.mark is not None:
            return self.mark
        if self.best_bid is not None and self.best_ask is not None:
            with localcontext(EXACT):
                return (self.best_bid + self.best_ask) / 2
        return None

    def free(self, currency: str) -> Decimal:
        with localcontext(EXACT):
            return self.balances.get(currency, ZERO) - self.reserved.get(currency, ZERO)


# --- pure parsing helpers (unit-tested without Redis) ----------------------------------------------------


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def to_decimal(raw: Any) -> Decimal | None:
    """Exact decimal from stored text (bytes/str) or a JSON value; ``None`` for missing or malformed."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        value = Decimal(raw if isinstance(raw, str) else str(raw))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def decimal_map(raw: Mapping[Any, Any]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for k, v in raw.items():
        value = to_decimal(v)
        if value is not None:
            out[_text(k)] = value
    return out


def parse_positions(raw: Mapping[Any, Any]) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """``"<venue>|<symbol>" -> JSON`` -> ``{(venue, symbol): (signed amount, avg_entry_price)}``."""
    out: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for k, v in raw.items():
        venue, sep, symbol = _text(k).partition("|")
        if not sep:
            continue
        data = orjson.loads(v)
        amount = to_decimal(data.get("amount"))
        if amount is None:
            continue
        out[(venue, symbol)] = (amount, to_decimal(data.get("avg_entry_price")) or ZERO)
    return out


def pick_mark(marks: Mapping[str, Decimal], symbol: str, venue: str | None) -> Decimal | None:
    """The symbol's mark on ``venue`` if known, else on the lexically first venue that has one."""
    if venue is not None and f"{venue}|{symbol}" in marks:
        return marks[f"{venue}|{symbol}"]
    for name in sorted(marks):
        if name.partition("|")[2] == symbol:
            return marks[name]
    return None


def top_of_book(raw: bytes | str | None) -> tuple[Decimal | None, Decimal | None]:
    """Best bid and best ask of a stored ``OrderBookUpdated`` JSON (``None`` where a side is empty)."""
    if raw is None:
        return None, None
    data = orjson.loads(raw)
    bids, asks = data.get("bids") or [], data.get("asks") or []
    bid = to_decimal(bids[0].get("price")) if bids else None
    ask = to_decimal(asks[0].get("price")) if asks else None
    return bid, ask


def least_favourable_top(
    tops: Sequence[tuple[Decimal | None, Decimal | None]],
) -> tuple[Decimal | None, Decimal | None]:
    bids = [b for b, _ in tops if b is not None]
    asks = [a for _, a in tops if a is not None]
    return (min(bids) if bids else None), (max(asks) if asks else None)


def parse_state(raw: bytes | str | None, default: TradingState | None) -> TradingState | None:
    if raw is None:
        return default
    try:
        return TradingState(_text(raw).upper())
    except ValueError:
        # An unreadable state must not open trading up: treat it as the strictest.
        return TradingState.HALTED


def build_snapshot(
    order: OrderSpec,
    *,
    states: Sequence[bytes | str | None],
    positions_raw: Mapping[Any, Any],
    marks_raw: Mapping[Any, Any],
    books_raw: Sequence[bytes | str | None],
    balances_raw: Mapping[Any, Any],
    reserved_raw: Mapping[Any, Any],
    index_raw: Mapping[Any, Any],
) -> RiskSnapshot:
    """Assemble a snapshot from raw Redis replies (pure)."""
    marks = decimal_map(marks_raw)
    positions = parse_positions(positions_raw)
    mark = pick_mark(marks, order.symbol, order.venue)
    best_bid, best_ask = least_favourable_top([top_of_book(raw) for raw in books_raw])

    position = ZERO
    gross = ZERO
    with localcontext(EXACT):
        for (venue, symbol), (amount, avg_entry) in positions.items():
            if symbol == order.symbol:
                position += amount
                value_at = mark
            else:
                value_at = pick_mark(marks, symbol, venue)
            gross += abs(amount) * (value_at if value_at is not None else avg_entry)

    return RiskSnapshot(
        global_state=parse_state(states[0], TradingState.ACTIVE) or TradingState.ACTIVE,
        account_state=parse_state(states[1], None),
        mark=mark,
        best_bid=best_bid,
        best_ask=best_ask,
        position=position,
        gross_exposure=gross,
        balances=decimal_map(balances_raw),
        reserved=decimal_map(reserved_raw),
        order_index={_text(k): _text(v) for k, v in index_raw.items()},
    )


# --- Redis ------------------------------------------------------------------------------------------------


def read_snapshot(
    client: redis.Redis, keys: Keys, order: OrderSpec, *, venues: Sequence[str] = ()
) -> RiskSnapshot:
    """Read everything for ``order`` in one pipelined round trip. Books are read for ``order.venue``, or
    for each of ``venues`` when the order leaves the venue to the router."""
    book_venues = [order.venue] if order.venue is not None else list(venues)
    account = order.account_id
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.trading_state, [GLOBAL_STATE_FIELD, account])
    pipe.hgetall(keys.position(account))
    pipe.hgetall(keys.marks)
    pipe.hgetall(keys.balance(account))
    pipe.hgetall(keys.reserved(account))
    pipe.hgetall(keys.order(order.client_order_id))
    for venue in book_venues:
        pipe.get(keys.book(venue, order.symbol))
    try:
        replies = pipe.execute()
    except redis.RedisError as exc:
        raise StoreUnavailable(f"redis: reading the risk snapshot: {exc}") from exc
    states, positions_raw, marks_raw, balances_raw, reserved_raw, index_raw, *books_raw = replies
    return build_snapshot(
        order,
        states=states,
        positions_raw=positions_raw,
        marks_raw=marks_raw,
        books_raw=books_raw,
        balances_raw=balances_raw,
        reserved_raw=reserved_raw,
        index_raw=index_raw,
    )


def set_trading_state(
    client: redis.Redis, keys: Keys, state: TradingState, account_id: str | None = None
) -> None:
    """Set the global trading state (``account_id`` None) or one account's."""
    client.hset(keys.trading_state, account_id or GLOBAL_STATE_FIELD, state.value)


def get_trading_state(client: redis.Redis, keys: Keys, account_id: str | None = None) -> TradingState:
    """The state stored for ``account_id`` (or the global one); ACTIVE when none is stored."""
    raw = client.hget(keys.trading_state, account_id or GLOBAL_STATE_FIELD)
    return parse_state(raw, TradingState.ACTIVE) or TradingState.ACTIVE
