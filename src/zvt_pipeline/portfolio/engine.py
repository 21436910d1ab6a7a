"""Pure portfolio accounting: fills in, positions and cash out. No I/O; ``Decimal`` everywhere.

Conventions
-----------
- **One netting position per (account, venue, symbol)**, keyed ``(venue, symbol)`` inside an account.
  ``amount`` is signed: positive long, negative short, in base currency.
- **Average cost.** Adding to a position (or opening one) moves ``avg_entry_price`` to the size-weighted
  mean of the old average and the fill price. Reducing leaves it unchanged. Closing to exactly zero sets it
  to 0. A **flip** (a fill larger than the position, in the other direction) closes the old side at its
  average and opens the rest at the fill price.
- **Realized PnL** is cumulative over the life of the position key, in quote currency:
  ``closed_amount * (fill_price - avg_entry_price)`` for a long being reduced (the opposite sign for a
  short), **minus every fee paid in quote or base currency** (a base-currency fee is valued at the fill
  price). Fees in a third currency (e.g. BNB) are recorded in ``fees_paid`` and taken from that currency's
  cash, but not put into realized PnL: there is no price for them here.
- **Fees.** A quote-currency fee costs cash. A base-currency fee costs position: a buy of 1 BTC with a
  0.001 BTC fee leaves +0.999 BTC; a sell of 1 BTC with a 0.001 BTC fee takes 1.001 BTC off the position.
  Accounting-wise such a fill is a trade of ``side * amount - fee`` base at the fill price plus a
  quote-equivalent fee of ``fee * price``; this is what keeps ``realized + unrealized`` equal to the change
  of equity at any mark.
- **Cash** per currency: a buy takes ``amount * price`` (+ a quote fee) from the quote balance, a sell adds
  ``amount * price`` (- a quote fee). Linear swaps (``BTC/USDT:USDT``) are booked the same way, as if the
  notional changed hands: equity (cash + amount * mark) comes out right, but the cash figure is not margin.
- **Precision.** Sums and products of fills are exact (computed with 80 significant digits). The average
  entry price is a quotient, so it and the PnL derived from it are rounded half-even to 18 decimal places
  (the messages' limit); a result is never rounded otherwise.
- **Exactly once.** ``AccountState.applied_trades`` holds ``"<venue>|<trade_id>"`` of every applied fill
  (trade ids are unique per venue only, so two venues may reuse one); applying a fill again is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.messages.events import OrderExecuted, PositionUpdated
from zvt_pipeline.messages.types import MAX_DECIMAL_PLACES, split_symbol

ZERO = Decimal(0)
DECIMAL_CONTEXT = Context(prec=80, rounding=ROUND_HALF_EVEN)
_QUANTUM = Decimal(1).scaleb(-MAX_DECIMAL_PLACES)

PositionKey = tuple[str, str]
"""``(venue, symbol)``: the key of a netting position inside one account."""


def canonical(value: Decimal) -> Decimal:
    """At most 18 decimal places (rounded half-even), no trailing zeros, no positive exponent (``100``,
    not ``1E+2``). ``decimal_text`` gives the positional text to store."""
    with localcontext(DECIMAL_CONTEXT):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
            value = value.quantize(_QUANTUM)
        if value == 0:
            return ZERO
        value = value.normalize()
        if value.as_tuple().exponent > 0:  # type: ignore[operator]
            value = value.quantize(Decimal(1))
        return value


def decimal_text(value: Decimal) -> str:
    """The stored text of a decimal: canonical and always positional (``0.00000001``, never ``1E-8``)."""
    return format(canonical(value), "f")


def position_field(venue: str, symbol: str) -> str:
    """The Redis hash field (and printable name) of a position: ``<venue>|<symbol>``."""
    return f"{venue}|{symbol}"


def parse_position_field(name: str) -> PositionKey:
    venue, _, symbol = name.partition("|")
    return venue, symbol


def fill_key(fill: OrderExecuted) -> str:
    """What makes a fill unique: ``<venue>|<trade_id>`` (a trade id is unique per venue only)."""
    return f"{fill.venue}|{fill.trade_id}"


@dataclass(frozen=True, slots=True)
class Position:
    """One netting position. Mappings are never mutated: every change builds a new ``Position``."""

    amount: Decimal = ZERO
    avg_entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees_paid: Mapping[str, Decimal] = field(default_factory=dict)
    last_trade_id: str | None = None

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """``amount * (mark - avg_entry_price)``: positive when the mark moved in the position's favour."""
        with localcontext(DECIMAL_CONTEXT):
            return canonical(self.amount * (mark - self.avg_entry_price))


@dataclass(frozen=True, slots=True)
class AccountState:
    """Positions, cash and applied fills of one account. Immutable: ``apply_fill`` returns a new one."""

    account_id: str
    positions: Mapping[PositionKey, Position] = field(default_factory=dict)
    balances: Mapping[str, Decimal] = field(default_factory=dict)
    """Cash per currency. May go negative (the pipeline's risk step, not the ledger, prevents that)."""
    applied_trades: frozenset[str] = frozenset()
    """``fill_key`` of every fill applied."""

    def position(self, venue: str, symbol: str) -> Position:
        return self.positions.get((venue, symbol), Position())

    def fees_paid(self) -> dict[str, Decimal]:
        """Fees paid by the whole account, per currency."""
        out: dict[str, Decimal] = {}
        for pos in self.positions.values():
            for currency, amount in pos.fees_paid.items():
                out[currency] = out.get(currency, ZERO) + amount
        return out


def _trade(amount: Decimal, avg: Decimal, delta: Decimal, price: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """Apply a signed base ``delta`` at ``price`` to a position: ``(new amount, new avg, realized)``."""
    if delta == 0:
        return amount, avg, ZERO
    new_amount = amount + delta
    if amount == 0 or (amount > 0) == (delta > 0):
        new_avg = (abs(amount) * avg + abs(delta) * price) / abs(new_amount)
        return new_amount, canonical(new_avg), ZERO
    closed = min(abs(amount), abs(delta))
    direction = 1 if amount > 0 else -1
    realized = closed * (price - avg) * direction
    if new_amount == 0:
        new_avg = ZERO
    elif (new_amount > 0) == (amount > 0):
        new_avg = avg  # a reduce keeps the average
    else:
        new_avg = price  # a flip opens the remainder at the fill price
    return new_amount, new_avg, realized


class Ledger:
    """A mutable working copy of one account, for folding many events without copying the whole state per
    event (``apply_fills``, ``rebuild``). ``freeze()`` hands back an immutable ``AccountState``."""

    __slots__ = ("account_id", "applied", "balances", "positions")

    def __init__(
        self,
        account_id: str,
        positions: Mapping[PositionKey, Position] | None = None,
        balances: Mapping[str, Decimal] | None = None,
        applied: Iterable[str] = (),
    ) -> None:
        self.account_id = account_id
        self.positions: dict[PositionKey, Position] = dict(positions or {})
        self.balances: dict[str, Decimal] = dict(balances or {})
        self.applied: set[str] = set(applied)

    @classmethod
    def of(cls, state: AccountState) -> Ledger:
        return cls(state.account_id, state.positions, state.balances, state.applied_trades)

    def apply(self, fill: OrderExecuted) -> bool:
        """Apply ``fill``; ``False`` (and no change) if it was applied before."""
        if fill.account_id != self.account_id:
            raise InvalidMessage(
                f"account_id: fill {fill.trade_id} is for {fill.account_id!r}, not {self.account_id!r}",
                field="account_id",
            )
        key = fill_key(fill)
        if key in self.applied:
            return False
        base, quote = split_symbol(fill.symbol)
        fee_currency, fee_cost = fill.fee.currency, fill.fee.cost
        base_fee = fee_cost if fee_currency == base else ZERO
        quote_fee = fee_cost if fee_currency == quote else ZERO
        with localcontext(DECIMAL_CONTEXT):
            signed = fill.side.sign * fill.amount
            old = self.positions.get((fill.venue, fill.symbol), Position())
            amount, avg, realized = _trade(old.amount, old.avg_entry_price, signed - base_fee, fill.price)
            fee_value = quote_fee + base_fee * fill.price
            fees_paid = dict(old.fees_paid)
            if fee_cost:
                fees_paid[fee_currency] = canonical(fees_paid.get(fee_currency, ZERO) + fee_cost)
            self.positions[(fill.venue, fill.symbol)] = Position(
                amount=canonical(amount),
                avg_entry_price=canonical(avg),
                realized_pnl=canonical(old.realized_pnl + realized - fee_value),
                fees_paid=fees_paid,
                last_trade_id=fill.trade_id,
            )
            balances = self.balances
            balances[quote] = canonical(balances.get(quote, ZERO) - signed * fill.price - quote_fee)
            if fee_cost and fee_currency not in (base, quote):
                balances[fee_currency] = canonical(balances.get(fee_currency, ZERO) - fee_cost)
        self.applied.add(key)
        return True

    def deposit(self, currency: str, amount: Decimal) -> None:
        with localcontext(DECIMAL_CONTEXT):
            self.balances[currency] = canonical(self.balances.get(currency, ZERO) + amount)

    def freeze(self) -> AccountState:
        return AccountState(
            self.account_id, dict(self.positions), dict(self.balances), frozenset(self.applied)
        )


def apply_fill(state: AccountState, fill: OrderExecuted) -> AccountState:
    """The account after ``fill``; ``state`` itself if the fill was applied before (same ``fill_key``)."""
    if fill.account_id == state.account_id and fill_key(fill) in state.applied_trades:
        return state
    # The applied-trade set grows with history: it is not copied into the ledger, only extended at the end.
    ledger = Ledger(state.account_id, state.positions, state.balances)
    ledger.apply(fill)
    return AccountState(
        state.account_id, ledger.positions, ledger.balances, state.applied_trades | ledger.applied
    )


def apply_fills(state: AccountState, fills: Iterable[OrderExecuted]) -> AccountState:
    """Fold ``fills`` into ``state`` (duplicates skipped); linear in the number of fills."""
    ledger = Ledger.of(state)
    for fill in fills:
        ledger.apply(fill)
    return ledger.freeze()


def deposit(state: AccountState, currency: str, amount: Decimal) -> AccountState:
    """Cash in (a negative ``amount`` takes cash out)."""
    ledger = Ledger(state.account_id, balances=state.balances)
    ledger.deposit(currency, amount)
    return AccountState(state.account_id, state.positions, ledger.balances, state.applied_trades)


def position_updated(state: AccountState, fill: OrderExecuted) -> PositionUpdated:
    """The ``position.updated`` event for ``fill``, from the account state right after it."""
    pos = state.position(fill.venue, fill.symbol)
    return PositionUpdated(
        account_id=state.account_id,
        venue=fill.venue,
        symbol=fill.symbol,
        trade_id=fill.trade_id,
        amount=pos.amount,
        avg_entry_price=pos.avg_entry_price,
        realized_pnl=pos.realized_pnl,
        fees_paid=dict(pos.fees_paid),
        balances=dict(state.balances),
    )
