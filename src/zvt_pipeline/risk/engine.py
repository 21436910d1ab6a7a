"""The pre-trade risk engine: pure, no I/O. ``check(order, snapshot, now) -> RiskDecision``.

Rules run in this order; the first that fails rejects the order, naming itself and the numbers:

==========================  ================================================================================
``trading_state``           HALTED (global or account) denies every order; REDUCING allows only orders that
                            shrink the position (opposite side, amount <= |position|).
``stale_intent``            ``created_at + ttl_seconds + stale_grace_seconds < now``.
``symbol_allowed``          the symbol has a market and is in the scope's ``allowed_symbols``.
``market_active``           the market is active.
``amount_precision``        amount is a multiple of the market's amount step.
``price_precision``         a limit price is a multiple of the market's price step.
``min_amount``              amount >= market ``limits.amount.min``.
``max_amount``              amount <= market ``limits.amount.max``.
``reference_price``         a market order needs a price to be valued at: the best ask (buy) / best bid
                            (sell), else the mark.
``min_notional``            amount * price >= market ``limits.cost.min``.
``max_notional``            amount * price <= ``max_order_notional`` and market ``limits.cost.max``.
``price_band``              |price - mark| / mark <= ``price_band_pct``; price = the limit price, or for a
                            market order the best ask (buy) / best bid (sell).
``reduce_only``             a ``reduce_only`` order must shrink the position.
``max_position``            |position after| * mark <= ``max_position_notional`` (shrinking always passes).
``max_gross_exposure``      gross exposure after the order <= ``max_gross_exposure`` (shrinking passes).
==========================  ================================================================================

The last three rules need state shared by concurrent orders and are checked atomically in Redis by
``Reservations.reserve``: ``duplicate_client_order_id``, ``rate_limit``, ``free_balance``.

What an approved order holds back (its ``Reservation``):
- **buy**: ``amount * bound * (1 + taker fee)`` in quote, where ``bound`` is the limit price, or for a
  market order the worst price it may fill at within the band: ``best ask * (1 + price_band_pct)`` (the
  mark when there is no book).
- **sell that only reduces a long** (``amount <= position``): ``amount`` in base, held against the
  position. Base currency is not cash in this pipeline (the portfolio keeps holdings as positions), so
  holding it against the position is what stops two concurrent sells from selling the same coins.
- **any other sell** (opens, grows or flips through a short): collateral in quote, ``amount * price *
  (1 + taker fee)``, with the limit price, or the best bid / mark for a market order. Conservative for a
  flip: the part that closes the long is collateralised too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal, localcontext
from typing import Literal

from zvt_pipeline.markets import Market
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import Reservation
from zvt_pipeline.messages.types import MAX_DECIMAL_PLACES, OrderType, Side, TradingState
from zvt_pipeline.risk.config import RiskConfig, RiskLimits
from zvt_pipeline.risk.snapshot import EXACT, ZERO, RiskSnapshot

HeldAgainst = Literal["cash", "position"]

ENGINE_RULES: tuple[str, ...] = (
    "trading_state",
    "stale_intent",
    "symbol_allowed",
    "market_active",
    "amount_precision",
    "price_precision",
    "min_amount",
    "max_amount",
    "reference_price",
    "min_notional",
    "max_notional",
    "price_band",
    "reduce_only",
    "max_position",
    "max_gross_exposure",
)
"""The pure rules, in the order they run."""

ATOMIC_RULES: tuple[str, ...] = ("duplicate_client_order_id", "rate_limit", "free_balance")
"""The rules ``Reservations.reserve`` checks atomically in Redis, in this order, after the pure ones."""

_QUANTUM = Decimal(1).scaleb(-MAX_DECIMAL_PLACES)


def fmt(value: Decimal) -> str:
    """Exact decimal text, no exponent, no trailing zeros: ``70000``, ``0.0015``."""
    if value == 0:
        return "0"
    # normalize() rounds to the context's precision: use ours, not the default 28 digits.
    return format(value.normalize(EXACT), "f")


def pct(value: Decimal) -> str:
    return f"{fmt((value * 100).quantize(Decimal('0.01')))}%"


def ceil_places(value: Decimal) -> Decimal:
    """Round up to the 18 decimal places messages allow (a reservation may be a hair larger, never smaller)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        value = value.quantize(_QUANTUM, rounding=ROUND_CEILING)
    return value


def shrinks(side: Side, amount: Decimal, position: Decimal) -> bool:
    """True if the order only reduces the position, without flipping through zero."""
    if position == 0:
        return False
    opposite = (position > 0 and side is Side.SELL) or (position < 0 and side is Side.BUY)
    return opposite and amount <= abs(position)


class Rejection(Exception):
    """Raised inside the engine to stop at the first failing rule."""

    def __init__(self, rule: str, reason: str, details: dict[str, str]) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason
        self.details = details


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """Approved (with the reservation to hold) or rejected (with the rule, the reason and the numbers)."""

    approved: bool
    checks: tuple[str, ...] = ()
    """The rules that passed, in order."""
    reservation: Reservation | None = None
    held_against: HeldAgainst = "cash"
    """``cash``: reservation checked against the balance; ``position``: against the long position."""
    rule: str | None = None
    reason: str = ""
    details: dict[str, str] = field(default_factory=dict)


class RiskEngine:
    def __init__(self, config: RiskConfig, markets: dict[str, Market]) -> None:
        self.config = config
        self.markets = markets

    def check(self, order: OrderSpec, snapshot: RiskSnapshot, now: datetime) -> RiskDecision:
        passed: list[str] = []
        try:
            # Products of 18-place decimals need more than the default 28 significant digits to stay exact.
            with localcontext(EXACT):
                return _Check(self, order, snapshot, now, passed).run()
        except Rejection as rej:
            return RiskDecision(
                approved=False, checks=tuple(passed), rule=rej.rule, reason=rej.reason, details=rej.details
            )


class _Check:
    """One order's evaluation; each ``_rule`` method raises ``Rejection`` or returns."""

    def __init__(
        self, engine: RiskEngine, order: OrderSpec, snap: RiskSnapshot, now: datetime, passed: list[str]
    ) -> None:
        self.order = order
        self.snap = snap
        self.now = now
        self.passed = passed
        self.markets = engine.markets
        self.limits: RiskLimits = engine.config.limits_for(order.account_id, order.symbol)
        self.market: Market | None = engine.markets.get(order.symbol)
        self.price: Decimal = ZERO  # reference price, set by _reference_price
        self.notional: Decimal = ZERO

    def run(self) -> RiskDecision:
        for rule in ENGINE_RULES:
            getattr(self, f"_{rule}")()
            self.passed.append(rule)
        reservation, held_against = self._reservation()
        return RiskDecision(
            approved=True, checks=tuple(self.passed), reservation=reservation, held_against=held_against
        )

    # helpers -------------------------------------------------------------------------------------------

    def _reject(self, rule: str, reason: str, **details: object) -> Rejection:
        return Rejection(
            rule,
            reason,
            {k: fmt(v) if isinstance(v, Decimal) else str(v) for k, v in details.items()},
        )

    @property
    def _m(self) -> Market:
        assert self.market is not None  # symbol_allowed ran first
        return self.market

    @property
    def _quote(self) -> str:
        return self._m.quote

    def _signed(self) -> Decimal:
        return self.order.amount * self.order.side.sign

    def _valuation_price(self) -> Decimal:
        mark = self.snap.reference_mark
        return mark if mark is not None else self.price

    # rules ---------------------------------------------------------------------------------------------

    def _trading_state(self) -> None:
        state = self.snap.trading_state
        scope = (
            f"account {self.order.account_id}"
            if self.snap.account_state is state and state is not self.snap.global_state
            else "global"
        )
        if state is TradingState.HALTED:
            raise self._reject(
                "trading_state", f"trading is HALTED ({scope}): no new orders", state=state.value, scope=scope
            )
        if state is TradingState.REDUCING and not shrinks(
            self.order.side, self.order.amount, self.snap.position
        ):
            after = self.snap.position + self._signed()
            raise self._reject(
                "trading_state",
                f"trading is REDUCING ({scope}): {self.order.side.value} {fmt(self.order.amount)} would not "
                f"reduce position {fmt(self.snap.position)} (it would become {fmt(after)})",
                state=state.value,
                scope=scope,
                position=self.snap.position,
                position_after=after,
            )

    def _stale_intent(self) -> None:
        ttl = self.order.ttl_seconds
        grace = self.limits.stale_grace_seconds
        expires = self.order.created_at + timedelta(seconds=ttl + grace)
        if self.now > expires:
            age = (self.now - self.order.created_at).total_seconds()
            raise self._reject(
                "stale_intent",
                f"intent is stale: created {age:.3f} s ago, ttl {ttl} s + grace {grace:g} s "
                f"(expired at {expires.isoformat()})",
                created_at=self.order.created_at.isoformat(),
                expires_at=expires.isoformat(),
                now=self.now.isoformat(),
                ttl_seconds=ttl,
            )

    def _symbol_allowed(self) -> None:
        symbol = self.order.symbol
        if self.market is None:
            raise self._reject(
                "symbol_allowed",
                f"unknown symbol {symbol}: no market (known: {', '.join(sorted(self.markets)) or 'none'})",
                symbol=symbol,
            )
        allowed = self.limits.allowed_symbols
        if allowed is not None and symbol not in allowed:
            raise self._reject(
                "symbol_allowed",
                f"symbol {symbol} is not allowed for account {self.order.account_id} "
                f"(allowed: {', '.join(sorted(allowed)) or 'none'})",
                symbol=symbol,
                allowed=",".join(sorted(allowed)),
            )

    def _market_active(self) -> None:
        if not self._m.active:
            raise self._reject(
                "market_active", f"market {self.order.symbol} is not active", symbol=self.order.symbol
            )

    def _amount_precision(self) -> None:
        if not self._m.amount_ok(self.order.amount):
            step = self._m.amount_step
            raise self._reject(
                "amount_precision",
                f"amount {fmt(self.order.amount)} is not a multiple of the amount step {fmt(step)}",
                amount=self.order.amount,
                step=step,
            )

    def _price_precision(self) -> None:
        price = self.order.price
        if price is not None and not self._m.price_ok(price):
            step = self._m.price_step
            raise self._reject(
                "price_precision",
                f"price {fmt(price)} is not a multiple of the price step {fmt(step)}",
                price=price,
                step=step,
            )

    def _min_amount(self) -> None:
        low = self._m.limits.amount_min
        if low is not None and self.order.amount < low:
            raise self._reject(
                "min_amount",
                f"amount {fmt(self.order.amount)} {self._m.base} < min {fmt(low)} {self._m.base}",
                amount=self.order.amount,
                min=low,
            )

    def _max_amount(self) -> None:
        high = self._m.limits.amount_max
        if high is not None and self.order.amount > high:
            raise self._reject(
                "max_amount",
                f"amount {fmt(self.order.amount)} {self._m.base} > max {fmt(high)} {self._m.base}",
                amount=self.order.amount,
                max=high,
            )

    def _reference_price(self) -> None:
        if self.order.price is not None:
            price: Decimal | None = self.order.price
        else:
            top = self.snap.best_ask if self.order.side is Side.BUY else self.snap.best_bid
            price = top if top is not None else self.snap.mark
        if price is None:
            raise self._reject(
                "reference_price",
                f"market order in {self.order.symbol}: no book and no mark to price it at",
                symbol=self.order.symbol,
            )
        self.price = price
        self.notional = self.order.amount * price

    def _min_notional(self) -> None:
        low = self._m.limits.cost_min
        if low is not None and self.notional < low:
            raise self._reject(
                "min_notional",
                f"notional {fmt(self.notional)} {self._quote} < min {fmt(low)} {self._quote} "
                f"({fmt(self.order.amount)} at {fmt(self.price)})",
                notional=self.notional,
                min=low,
                price=self.price,
            )

    def _max_notional(self) -> None:
        for high, source in (
            (self.limits.max_order_notional, "risk config"),
            (self._m.limits.cost_max, "market"),
        ):
            if high is not None and self.notional > high:
                raise self._reject(
                    "max_notional",
                    f"notional {fmt(self.notional)} {self._quote} > max {fmt(high)} {self._quote} "
                    f"({source}; {fmt(self.order.amount)} at {fmt(self.price)})",
                    notional=self.notional,
                    max=high,
                    price=self.price,
                    limit_source=source,
                )

    def _price_band(self) -> None:
        band = self.limits.price_band_pct
        if band is None:
            return
        mark = self.snap.reference_mark
        if mark is None:
            if self.limits.require_mark:
                raise self._reject(
                    "price_band",
                    f"no mark for {self.order.symbol}: the {pct(band)} price band cannot be checked",
                    symbol=self.order.symbol,
                    band=band,
                )
            return
        if self.order.type is OrderType.LIMIT:
            price, what = self.price, "limit price"
        else:
            top = self.snap.best_ask if self.order.side is Side.BUY else self.snap.best_bid
            if top is None:
                return  # priced at the mark itself: no deviation to measure
            price, what = top, "best ask" if self.order.side is Side.BUY else "best bid"
        deviation = abs(price - mark) / mark
        if deviation > band:
            raise self._reject(
                "price_band",
                f"{what} {fmt(price)} is {pct(deviation)} from mark {fmt(mark)} (band {pct(band)})",
                price=price,
                mark=mark,
                deviation=deviation.quantize(Decimal("0.000001")),
                band=band,
            )

    def _reduce_only(self) -> None:
        if not (self.order.reduce_only and self.limits.enforce_reduce_only):
            return
        position = self.snap.position
        if not shrinks(self.order.side, self.order.amount, position):
            after = position + self._signed()
            raise self._reject(
                "reduce_only",
                f"reduce_only {self.order.side.value} {fmt(self.order.amount)} would not reduce position "
                f"{fmt(position)} (it would become {fmt(after)})",
                position=position,
                position_after=after,
            )

    def _max_position(self) -> None:
        high = self.limits.max_position_notional
        position = self.snap.position
        after = position + self._signed()
        if high is None or abs(after) <= abs(position):
            return
        price = self._valuation_price()
        value = abs(after) * price
        if value > high:
            raise self._reject(
                "max_position",
                f"position {fmt(after)} {self._m.base} = {fmt(value)} {self._quote} at {fmt(price)} "
                f"> max {fmt(high)} {self._quote}",
                position=position,
                position_after=after,
                value=value,
                price=price,
                max=high,
            )

    def _max_gross_exposure(self) -> None:
        high = self.limits.max_gross_exposure
        position = self.snap.position
        after = position + self._signed()
        if high is None or abs(after) <= abs(position):
            return
        price = self._valuation_price()
        gross_after = self.snap.gross_exposure + (abs(after) - abs(position)) * price
        if gross_after > high:
            raise self._reject(
                "max_gross_exposure",
                f"gross exposure {fmt(gross_after)} {self._quote} after the order > max {fmt(high)} "
                f"{self._quote} (now {fmt(self.snap.gross_exposure)})",
                gross_exposure=self.snap.gross_exposure,
                gross_exposure_after=gross_after,
                max=high,
            )

    # reservation ---------------------------------------------------------------------------------------

    def _reservation(self) -> tuple[Reservation, HeldAgainst]:
        order, m = self.order, self._m
        fee = 1 + m.taker
        if order.side is Side.BUY:
            if order.price is not None:
                bound = order.price
            else:
                band = self.limits.price_band_pct or ZERO
                bound = self.price * (1 + band)
            return Reservation(currency=m.quote, amount=ceil_places(order.amount * bound * fee)), "cash"
        if order.amount <= self.snap.position:
            return Reservation(currency=m.base, amount=order.amount), "position"
        return Reservation(currency=m.quote, amount=ceil_places(order.amount * self.price * fee)), "cash"
