"""Seeded order flow for the demo and the benchmark. Pure: the same seed gives the same orders.

The mix is what a small desk sends: mostly marketable and near-touch limit orders that fill, rest or fill
partially, some sells that reduce positions, and a share of bad intents that risk must deny by name
(fat finger, too large, below min notional, wrong precision).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from zvt_pipeline.markets import Market
from zvt_pipeline.messages.commands import SubmitOrder
from zvt_pipeline.messages.types import OrderType, Side, TimeInForce


@dataclass(frozen=True)
class ScenarioConfig:
    accounts: tuple[str, ...] = ("alice", "bob", "carol")
    seed: int = 7
    bad_share: float = 0.08
    """Share of intents built to be rejected by a named risk rule."""
    market_share: float = 0.35
    notional_usdt: tuple[int, int] = (50, 5_000)
    """Range of an ordinary order's notional."""


def _amount(market: Market, notional: Decimal, price: Decimal) -> Decimal:
    amount = market.round_amount_down(notional / price)
    return max(amount, market.amount_step)


def generate(
    marks: Mapping[str, Decimal], markets: Mapping[str, Market], n: int, config: ScenarioConfig
) -> Iterator[SubmitOrder]:
    rng = random.Random(config.seed)
    symbols = sorted(s for s in marks if s in markets)
    for i in range(n):
        symbol = rng.choice(symbols)
        market, mark = markets[symbol], marks[symbol]
        account = rng.choice(config.accounts)
        side = Side.BUY if rng.random() < 0.6 else Side.SELL
        notional = Decimal(rng.randint(*config.notional_usdt))
        amount = _amount(market, notional, mark)
        coid = f"demo-{config.seed}-{i}"
        if rng.random() < config.bad_share:
            yield _bad(rng, coid, account, symbol, side, amount, mark, market)
            continue
        if rng.random() < config.market_share:
            yield SubmitOrder(
                client_order_id=coid,
                account_id=account,
                symbol=symbol,
                side=side,
                type=OrderType.MARKET,
                amount=amount,
                time_in_force=TimeInForce.IOC,
            )
            continue
        # Limit prices from 5 ticks through the touch to 20 ticks away: some cross, some rest.
        ticks = rng.randint(-5, 20)
        offset = (
            market.price_step * ticks * (mark / 1000).quantize(Decimal(1))
            if mark > 1000
            else market.price_step * ticks
        )
        price = market.round_price(mark - offset if side is Side.BUY else mark + offset)
        tif = TimeInForce.IOC if rng.random() < 0.3 else TimeInForce.GTC
        yield SubmitOrder(
            client_order_id=coid,
            account_id=account,
            symbol=symbol,
            side=side,
            type=OrderType.LIMIT,
            amount=amount,
            price=price,
            time_in_force=tif,
        )


def _bad(
    rng: random.Random,
    coid: str,
    account: str,
    symbol: str,
    side: Side,
    amount: Decimal,
    mark: Decimal,
    market: Market,
) -> SubmitOrder:
    kind = rng.choice(["fat_finger", "too_large", "dust", "precision"])
    price = market.round_price(mark)
    if kind == "fat_finger":
        price = market.round_price(mark * (Decimal("1.5") if side is Side.BUY else Decimal("0.5")))
    elif kind == "too_large":
        amount = market.round_amount_down(Decimal(2_000_000) / mark)
    elif kind == "dust":
        amount = market.amount_step
    else:
        amount = amount + market.amount_step / 10
    return SubmitOrder(
        client_order_id=coid,
        account_id=account,
        symbol=symbol,
        side=side,
        type=OrderType.LIMIT,
        amount=amount,
        price=price,
        time_in_force=TimeInForce.IOC,
    )
