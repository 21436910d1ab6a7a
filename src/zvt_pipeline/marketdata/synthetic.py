"""Generated market data for offline runs: a seeded random walk per market with a realistic order book.

All prices are whole multiples of the market's tick (``price_step``) and all amounts of its lot
(``amount_step``): the walk runs in integer ticks, so no float ever reaches a price or an amount (the only
float is the normal draw of a step's move, rounded to whole ticks). One ``random.Random(seed)`` drives
everything and time is simulated, so the same seed gives the same payloads, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from random import Random

from zvt_pipeline.marketdata.config import SyntheticConfig
from zvt_pipeline.markets import Market
from zvt_pipeline.messages.events import BookLevel, OrderBookUpdated, Payload, PriceUpdated, TradeTick
from zvt_pipeline.messages.types import Side, split_symbol, utcnow

_TWO = Decimal(2)


@dataclass(slots=True)
class _Walk:
    """Mutable state of one market's walk."""

    market: Market
    center_ticks: int
    """Reference price in ticks; the touch is placed around it each step."""
    min_ticks: int
    """Floor of the walk, so the deepest bid stays above zero."""
    volatility: float
    level_notional: Decimal
    sequence: int = 0
    trades: int = 0


class SyntheticMarketData:
    """Yields ``OrderBookUpdated``, ``PriceUpdated`` and, now and then, ``TradeTick`` for each market.

    Use ``step()`` (one batch: every market once), ``poll()`` (the same, as a ``MarketDataSource``),
    ``steps(n)`` or plain iteration (endless, payload by payload).
    """

    def __init__(
        self,
        markets: Mapping[str, Market] | Iterable[Market],
        config: SyntheticConfig | None = None,
    ) -> None:
        self.config = config or SyntheticConfig()
        market_list = list(markets.values()) if isinstance(markets, Mapping) else list(markets)
        if not market_list:
            raise ValueError("markets: at least one market is needed")
        self._rng = Random(self.config.seed)
        self._start: datetime = self.config.start_at or utcnow()
        self._step_no = 0
        self._growth = Decimal(str(self.config.depth_growth))
        self._walks: dict[str, _Walk] = {}
        deepest = self.config.max_spread_ticks + self.config.levels * self.config.max_level_gap_ticks
        for market in market_list:
            start = self.config.start_price(market.symbol)
            center = int((start / market.price_step).to_integral_value())
            self._walks[market.symbol] = _Walk(
                market=market,
                center_ticks=max(center, deepest + 1),
                min_ticks=deepest + 1,
                volatility=self.config.volatility_of(market.symbol),
                level_notional=self.config.level_notional,
            )

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._walks)

    @property
    def venue(self) -> str:
        return self.config.venue

    def mid(self, symbol: str) -> Decimal:
        """The current reference price of ``symbol`` (on the tick grid)."""
        walk = self._walks[symbol]
        return walk.center_ticks * walk.market.price_step

    def step(self) -> list[Payload]:
        """Advance every market one step; returns its book, its mark and maybe one trade, market by market."""
        at = self._start + timedelta(milliseconds=self._step_no * self.config.step_interval_ms)
        self._step_no += 1
        out: list[Payload] = []
        for walk in self._walks.values():
            out.extend(self._advance(walk, at))
        return out

    def poll(self) -> list[Payload]:
        return self.step()

    def steps(self, count: int) -> Iterator[Payload]:
        for _ in range(count):
            yield from self.step()

    def __iter__(self) -> Iterator[Payload]:
        while True:
            yield from self.step()

    # --- one market, one step ---------------------------------------------------------------------------

    def _advance(self, walk: _Walk, at: datetime) -> list[Payload]:
        rng, cfg, market = self._rng, self.config, walk.market
        move = round(rng.gauss(0.0, walk.volatility) * walk.center_ticks)
        walk.center_ticks = max(walk.min_ticks, walk.center_ticks + move)

        spread = rng.randint(1, cfg.max_spread_ticks)
        best_bid = walk.center_ticks - spread // 2
        best_ask = best_bid + spread
        tick = market.price_step
        mid = (best_bid + best_ask) * tick / _TWO
        # One lot of the base currency is worth ``lot_value`` in quote: sizes are drawn in whole lots.
        lot_value = mid * market.amount_step

        bids = self._side(walk, best_bid, -1, lot_value)
        asks = self._side(walk, best_ask, +1, lot_value)
        walk.sequence += 1
        symbol, venue = market.symbol, cfg.venue
        out: list[Payload] = [
            OrderBookUpdated(
                venue=venue, symbol=symbol, bids=bids, asks=asks, timestamp=at, sequence=walk.sequence
            ),
            PriceUpdated(
                venue=venue, symbol=symbol, price=mid, bid=bids[0].price, ask=asks[0].price, timestamp=at
            ),
        ]
        if rng.random() < cfg.trade_probability:
            # A taker trade at the touch: buys lift the best ask, sells hit the best bid.
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            touch = asks[0] if side is Side.BUY else bids[0]
            lots = rng.randint(1, max(1, int(touch.amount / market.amount_step)))
            walk.trades += 1
            base, quote = split_symbol(symbol)
            out.append(
                TradeTick(
                    venue=venue,
                    symbol=symbol,
                    trade_id=f"{base}{quote}-{walk.trades}",
                    price=touch.price,
                    amount=lots * market.amount_step,
                    side=side,
                    timestamp=at,
                )
            )
        return out

    def _side(
        self, walk: _Walk, best_ticks: int, direction: int, lot_value: Decimal
    ) -> tuple[BookLevel, ...]:
        """``levels`` levels from the touch outwards (``direction`` -1 for bids, +1 for asks)."""
        rng, cfg, market = self._rng, self.config, walk.market
        levels: list[BookLevel] = []
        ticks = best_ticks
        for i in range(cfg.levels):
            if i:
                ticks += direction * rng.randint(1, cfg.max_level_gap_ticks)
            # Size in quote ~ level_notional * (1 + growth * i), jittered by 0.5x..1.5x.
            jitter = Decimal(rng.randint(500, 1500)) / 1000
            notional = walk.level_notional * (1 + self._growth * i) * jitter
            lots = max(1, int((notional / lot_value).to_integral_value(ROUND_DOWN)))
            levels.append(BookLevel(price=ticks * market.price_step, amount=lots * market.amount_step))
        return tuple(levels)
