"""The rebalance planner: target weights + holdings + marks -> the orders that move an account there. Pure.

Rules:
- equity = cash (quote currency) + sum(holding * mark) over the symbols with a mark;
- per symbol, the value to trade is ``target * equity - holding * mark``; its amount is rounded DOWN to
  the market's amount step (never more than asked) and a sell never exceeds the holding;
- an order below the market's minimum amount or minimum notional is dropped, with a note saying why;
- sells come first: their proceeds (net of the taker fee, at the worst accepted price) fund the buys;
- buys are limit IOC orders priced ``mark * (1 + slippage)``: risk reserves ``amount * price`` and the fee
  is paid on top, so when ``amount * price * (1 + taker)`` of all buys exceeds the cash available they are
  scaled down together and re-rounded (note ``capped by cash``);
- sells are limit IOC orders priced ``mark * (1 - slippage)``. Both stay inside risk's price band.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from zvt_pipeline.markets import Market
from zvt_pipeline.messages.types import Side

ZERO = Decimal(0)


@dataclass(frozen=True)
class PlannedOrder:
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    """Limit price (IOC): the worst price accepted."""

    @property
    def notional(self) -> Decimal:
        return self.amount * self.price


@dataclass(frozen=True)
class RebalancePlan:
    equity: Decimal
    weights: dict[str, Decimal]
    """Weights before the rebalance."""
    sells: tuple[PlannedOrder, ...] = ()
    buys: tuple[PlannedOrder, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def orders(self) -> tuple[PlannedOrder, ...]:
        return self.sells + self.buys


def weights(
    holdings: Mapping[str, Decimal], marks: Mapping[str, Decimal], cash: Decimal
) -> dict[str, Decimal]:
    """Weight of each marked holding in equity (``cash + sum(holding * mark)``)."""
    values = {s: a * marks[s] for s, a in holdings.items() if s in marks and a != 0}
    equity = cash + sum(values.values(), ZERO)
    if equity <= 0:
        return {s: ZERO for s in values}
    return {s: (v / equity).quantize(Decimal("0.0001")) for s, v in values.items()}


def _price(market: Market, mark: Decimal, side: Side, slippage: Decimal) -> Decimal:
    raw = mark * (1 + slippage) if side is Side.BUY else mark * (1 - slippage)
    rounding = ROUND_CEILING if side is Side.SELL else ROUND_FLOOR  # stay inside the band either way
    return (raw / market.price_step).to_integral_value(rounding) * market.price_step


def _too_small(market: Market, amount: Decimal, price: Decimal) -> str | None:
    if amount <= 0:
        return f"amount rounds to 0 at step {market.amount_step}"
    if market.limits.amount_min is not None and amount < market.limits.amount_min:
        return f"amount {amount} < min amount {market.limits.amount_min}"
    if market.limits.cost_min is not None and amount * price < market.limits.cost_min:
        return f"notional {amount * price} < min notional {market.limits.cost_min}"
    return None


def plan_rebalance(
    targets: Mapping[str, Decimal],
    holdings: Mapping[str, Decimal],
    marks: Mapping[str, Decimal],
    cash: Decimal,
    markets: Mapping[str, Market],
    *,
    slippage: Decimal = Decimal("0.01"),
) -> RebalancePlan:
    if any(w < 0 for w in targets.values()) or sum(targets.values(), ZERO) > 1:
        raise ValueError("targets: weights must be >= 0 and sum to at most 1")
    notes: list[str] = []
    symbols = sorted(set(targets) | {s for s, a in holdings.items() if a != 0})
    priced = [s for s in symbols if s in marks and s in markets]
    for s in symbols:
        if s not in markets:
            notes.append(f"{s}: no market, left alone")
        elif s not in marks:
            notes.append(f"{s}: no mark, left alone")
    equity = cash + sum((holdings.get(s, ZERO) * marks[s] for s in priced), ZERO)
    if equity <= 0:
        return RebalancePlan(equity, {}, notes=(*notes, "equity is not positive: nothing to do"))

    sells: list[PlannedOrder] = []
    wanted_buys: list[tuple[str, Decimal]] = []
    for s in priced:
        market, mark, held = markets[s], marks[s], holdings.get(s, ZERO)
        delta = targets.get(s, ZERO) * equity - held * mark
        if delta < 0:
            amount = market.round_amount_down(min(-delta / mark, max(held, ZERO)))
            price = _price(market, mark, Side.SELL, slippage)
            reason = _too_small(market, amount, price)
            if reason:
                notes.append(f"{s}: sell skipped, {reason}")
            else:
                sells.append(PlannedOrder(s, Side.SELL, amount, price))
        elif delta > 0:
            wanted_buys.append((s, delta / mark))

    proceeds = sum((o.notional * (1 - markets[o.symbol].taker) for o in sells), ZERO)
    available = cash + proceeds
    buys = _fit_buys(wanted_buys, marks, markets, available, slippage, notes)
    return RebalancePlan(equity, weights(holdings, marks, cash), tuple(sells), tuple(buys), tuple(notes))


def _fit_buys(
    wanted: list[tuple[str, Decimal]],
    marks: Mapping[str, Decimal],
    markets: Mapping[str, Market],
    available: Decimal,
    slippage: Decimal,
    notes: list[str],
) -> list[PlannedOrder]:
    prices = {s: _price(markets[s], marks[s], Side.BUY, slippage) for s, _ in wanted}

    def cost(s: str, amount: Decimal) -> Decimal:
        return amount * prices[s] * (1 + markets[s].taker)

    total = sum((cost(s, a) for s, a in wanted), ZERO)
    scale = Decimal(1)
    if total > available:
        scale = max(available, ZERO) / total if total else ZERO
        notes.append(f"buys capped by cash: need {total:.8f}, have {available:.8f}")
    buys: list[PlannedOrder] = []
    for s, amount in wanted:
        rounded = markets[s].round_amount_down(amount * scale)
        reason = _too_small(markets[s], rounded, prices[s])
        if reason:
            notes.append(f"{s}: buy skipped, {reason}")
            continue
        buys.append(PlannedOrder(s, Side.BUY, rounded, prices[s]))
    return buys
