"""Market definitions in ccxt's unified market structure (precision as tick sizes, limits, fees).

Risk checks precision and limits against these; venues and the router use the fees. Markets come from a
venue (ccxt ``load_markets``) or, offline, from a JSON file in the same shape as ccxt's ``markets`` dict
(``data/markets.json`` ships the paper venue's).
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import Field

from zvt_pipeline.messages.types import Message, NonNegative, Quantity, Symbol


class MarketLimits(Message):
    amount_min: NonNegative | None = None
    amount_max: NonNegative | None = None
    price_min: NonNegative | None = None
    price_max: NonNegative | None = None
    cost_min: NonNegative | None = None
    """Minimum notional (amount * price) in quote currency."""
    cost_max: NonNegative | None = None


class Market(Message):
    symbol: Symbol
    base: str
    quote: str
    active: bool = True
    amount_step: Quantity = Field(description="ccxt precision['amount'] in TICK_SIZE mode")
    price_step: Quantity = Field(description="ccxt precision['price'] in TICK_SIZE mode")
    limits: MarketLimits = MarketLimits()
    taker: NonNegative = Decimal("0.001")
    maker: NonNegative = Decimal("0.001")

    def amount_ok(self, amount: Decimal) -> bool:
        return (amount % self.amount_step) == 0

    def price_ok(self, price: Decimal) -> bool:
        return (price % self.price_step) == 0

    def round_amount_down(self, amount: Decimal) -> Decimal:
        return (amount / self.amount_step).to_integral_value(ROUND_DOWN) * self.amount_step

    def round_price(self, price: Decimal) -> Decimal:
        return (price / self.price_step).to_integral_value() * self.price_step

    @classmethod
    def from_ccxt(cls, m: dict[str, Any]) -> Market:
        """From one entry of ccxt's ``exchange.markets`` (precision in TICK_SIZE mode, as ccxt 4 uses)."""

        def dec(x: Any) -> Decimal | None:
            return None if x is None else Decimal(str(x))

        limits = m.get("limits") or {}
        amount, price, cost = (limits.get(k) or {} for k in ("amount", "price", "cost"))
        precision = m.get("precision") or {}
        return cls(
            symbol=m["symbol"],
            base=m["base"],
            quote=m["quote"],
            active=m.get("active") is not False,
            amount_step=dec(precision.get("amount")) or Decimal("0.00000001"),
            price_step=dec(precision.get("price")) or Decimal("0.00000001"),
            limits=MarketLimits(
                amount_min=dec(amount.get("min")),
                amount_max=dec(amount.get("max")),
                price_min=dec(price.get("min")),
                price_max=dec(price.get("max")),
                cost_min=dec(cost.get("min")),
                cost_max=dec(cost.get("max")),
            ),
            taker=dec(m.get("taker")) or Decimal("0.001"),
            maker=dec(m.get("maker")) or Decimal("0.001"),
        )

    def to_ccxt(self) -> dict[str, Any]:
        """Back to ccxt's shape (numbers as floats, as ccxt keeps them), e.g. for ``set_markets``."""

        def f(x: Decimal | None) -> float | None:
            return None if x is None else float(x)

        lim = self.limits
        return {
            "id": self.symbol.replace("/", ""),
            "symbol": self.symbol,
            "base": self.base,
            "quote": self.quote,
            "baseId": self.base,
            "quoteId": self.quote,
            "active": self.active,
            "type": "spot",
            "spot": True,
            "precision": {"amount": f(self.amount_step), "price": f(self.price_step)},
            "limits": {
                "amount": {"min": f(lim.amount_min), "max": f(lim.amount_max)},
                "price": {"min": f(lim.price_min), "max": f(lim.price_max)},
                "cost": {"min": f(lim.cost_min), "max": f(lim.cost_max)},
            },
            "taker": f(self.taker),
            "maker": f(self.maker),
        }


def load_markets_file(path: str | Path | None = None) -> dict[str, Market]:
    """Markets from a ccxt-shaped JSON file (``{symbol: market}``); default: the paper venue's."""
    if path is None:
        raw = files("zvt_pipeline.data").joinpath("markets.json").read_text()
    else:
        raw = Path(path).read_text()
    data = json.loads(raw, parse_float=Decimal)
    return {sym: Market.from_ccxt({**m, "symbol": m.get("symbol", sym)}) for sym, m in data.items()}
