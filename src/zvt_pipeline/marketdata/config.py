"""Configuration of the market data sources. Frozen, keyword-only, unknown fields rejected; each default says why."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

from zvt_pipeline.messages.types import Message, Quantity, UtcDatetime, VenueId

DEFAULT_START_PRICES: dict[str, Decimal] = {
    "BTC/USDT": Decimal("60000"),
    "ETH/USDT": Decimal("3000"),
    "SOL/USDT": Decimal("150"),
}
"""Rough real-world levels, so notional limits and fees in the demo look like the real thing."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class SyntheticConfig(Message):
    """A seeded random walk of each market's mid price with a realistic order book around it."""

    seed: int = 0
    """Same seed, same markets, same ``start_at`` -> the identical sequence of payloads."""
    venue: VenueId = "paper"
    """The venue the books are published for: the paper venue matches against them."""
    start_prices: dict[str, Quantity] = Field(default_factory=lambda: dict(DEFAULT_START_PRICES))
    """Start mid per symbol. A symbol missing here starts at ``default_start_price``."""
    default_start_price: Quantity = Decimal("100")
    volatility: Annotated[float, Field(ge=0.0, le=0.1)] = 0.0005
    """Standard deviation of one step's relative mid move (5 bp: lively but no crash in a demo)."""
    volatility_by_symbol: dict[str, Annotated[float, Field(ge=0.0, le=0.1)]] = Field(default_factory=dict)
    """Per-symbol override of ``volatility``."""
    levels: Annotated[int, Field(ge=1, le=500)] = 20
    """Price levels per side (Binance's default partial-depth stream carries 20)."""
    max_spread_ticks: Annotated[int, Field(ge=1, le=1000)] = 4
    """The spread is 1..max ticks, drawn each step: a liquid market quotes a few ticks wide."""
    max_level_gap_ticks: Annotated[int, Field(ge=1, le=1000)] = 3
    """Adjacent levels of one side are 1..max ticks apart."""
    level_notional: Quantity = Decimal("5000")
    """Typical quote-currency size of the best level; deeper levels grow by ``depth_growth`` per level."""
    depth_growth: Annotated[float, Field(ge=0.0, le=10.0)] = 0.25
    """Level ``i`` holds about ``level_notional * (1 + depth_growth * i)``: books thicken away from the mid."""
    trade_probability: Probability = 0.3
    """Chance per symbol per step of one public trade at the touch."""
    step_interval_ms: Annotated[int, Field(ge=0)] = 100
    """Simulated time between steps; timestamps are ``start_at + n * step_interval_ms``, never the clock."""
    start_at: UtcDatetime | None = None
    """Simulated time of the first step. None = the wall clock when the generator is built (set it in
    tests that compare two runs)."""

    def start_price(self, symbol: str) -> Decimal:
        return self.start_prices.get(symbol, self.default_start_price)

    def volatility_of(self, symbol: str) -> float:
        return self.volatility_by_symbol.get(symbol, self.volatility)


class CcxtSourceConfig(Message):
    """Polling a real exchange through ccxt (REST), or streaming through ccxt.pro (websockets)."""

    exchange_id: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")] = "binance"
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    venue: VenueId | None = None
    """Venue name the payloads carry. None = the exchange id (``binance``)."""
    depth: Annotated[int, Field(ge=1, le=5000)] = 20
    """Book levels requested per side (Binance accepts 5, 10, 20, 50, 100, ...)."""
    with_ticker: bool = True
    """Fetch the ticker for the mark's bid/ask; off = mark from the book's touch (one call less)."""
    with_trades: bool = True
    """Fetch recent public trades each poll (only new trade ids are emitted)."""
    trades_limit: Annotated[int, Field(ge=1, le=1000)] = 50
    enable_rate_limit: bool = True
    """ccxt's own token-bucket throttle; leave on so a polling loop never gets the IP banned."""
    timeout_ms: Annotated[int, Field(ge=100)] = 10_000
    sandbox: bool = False

    @property
    def venue_id(self) -> str:
        return self.venue or self.exchange_id
