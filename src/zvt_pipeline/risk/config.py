"""Risk limits: defaults, per-symbol and per-account overrides, and where they are loaded from.

Precedence (most specific wins): the effective limits of an order of ``account`` in ``symbol`` are
``defaults``, then ``symbols[symbol]`` laid over them, then ``accounts[account]`` laid over that. An
override only changes the fields it names: ``{"max_order_notional": "1000"}`` keeps every other field,
while an explicit ``null`` (``{"max_order_notional": null}``) lifts that limit for the override's scope.

The config is plain JSON (decimals as strings or JSON numbers, both read exactly)::

    {"defaults": {"max_order_notional": "50000", "price_band_pct": "0.05"},
     "symbols":  {"SOL/USDT": {"max_position_notional": "20000"}},
     "accounts": {"desk-1": {"max_gross_exposure": "250000", "allowed_symbols": ["BTC/USDT"]}}}

``RiskConfigSource`` serves it from a file or from the Redis key ``keys.risk_config`` and re-reads it at
most every ``refresh_seconds``, so an edit applies to running workers without a restart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zvt_pipeline.errors import ConfigError, StoreUnavailable
from zvt_pipeline.messages.types import AccountId, Symbol
from zvt_pipeline.state.keys import Keys

log = logging.getLogger(__name__)

PositiveDecimal = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
Fraction = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RiskLimits(_Frozen):
    """The limits one order is checked against. ``None`` means "no limit" wherever it is allowed."""

    allowed_symbols: frozenset[Symbol] | None = None
    """Symbols this scope may trade. ``None`` (default): every symbol that has a market."""
    max_order_notional: PositiveDecimal | None = None
    """Largest ``amount * price`` of one order, in quote currency. ``None`` (default): only the market's
    own ``limits.cost.max`` applies."""
    max_position_notional: PositiveDecimal | None = None
    """Largest absolute position in one symbol (summed over venues) after the order, valued at the mark,
    in quote currency. Orders that shrink the position always pass. ``None`` (default): no limit."""
    max_gross_exposure: PositiveDecimal | None = None
    """Largest sum of ``|position| * mark`` over all of the account's positions after the order, in quote
    currency (all quotes are taken as one unit, e.g. USDT). Orders that shrink it always pass.
    ``None`` (default): no limit."""
    max_orders_per_window: Annotated[int, Field(ge=1)] | None = 100
    """Orders accepted per account within ``rate_window_seconds`` (sliding window, counted in Redis).
    Default 100 per second, NautilusTrader's default submit rate. ``None``: no limit."""
    rate_window_seconds: Annotated[float, Field(gt=0, le=86_400)] = 1.0
    """Length of the submit-rate window. Default 1 s."""
    price_band_pct: Fraction | None = Decimal("0.10")
    """Fat-finger band: the limit price, or a market order's best price (ask for buys, bid for sells), may
    differ from the last mark by at most this fraction. It also bounds a market buy's reservation
    (``best ask * (1 + band)``). Default 0.10 (10 %). ``None``: no band check, and market buys are reserved
    at the best ask with no headroom."""
    require_mark: bool = True
    """When a price band applies but no mark (nor a book to take a mid from) is known: ``True`` (default)
    rejects the order (fail closed); ``False`` skips the band check."""
    enforce_reduce_only: bool = True
    """Reject ``reduce_only`` orders that would not shrink the position. Default ``True``; ``False`` leaves
    the flag to the venue."""
    stale_grace_seconds: Annotated[float, Field(ge=0, le=3_600)] = 0.0
    """Extra seconds past ``created_at + ttl_seconds`` before an intent counts as stale (clock skew
    between the submitter and the risk worker). Default 0."""


class RiskLimitsOverride(_Frozen):
    """A partial ``RiskLimits``: only the fields given are applied (see the module docstring)."""

    allowed_symbols: frozenset[Symbol] | None = None
    max_order_notional: PositiveDecimal | None = None
    max_position_notional: PositiveDecimal | None = None
    max_gross_exposure: PositiveDecimal | None = None
    max_orders_per_window: Annotated[int, Field(ge=1)] | None = None
    rate_window_seconds: Annotated[float, Field(gt=0, le=86_400)] | None = None
    price_band_pct: Fraction | None = None
    require_mark: bool | None = None
    enforce_reduce_only: bool | None = None
    stale_grace_seconds: Annotated[float, Field(ge=0, le=3_600)] | None = None

    def apply_to(self, limits: RiskLimits) -> RiskLimits:
        changes = {name: getattr(self, name) for name in self.model_fields_set}
        # Fields that cannot be "unlimited" keep the lower layer's value when an override sends null.
        for name in ("rate_window_seconds", "require_mark", "enforce_reduce_only", "stale_grace_seconds"):
            if changes.get(name, 0) is None:
                del changes[name]
        return limits.model_copy(update=changes) if changes else limits


class RiskConfig(_Frozen):
    """Defaults plus per-symbol and per-account overrides. Precedence: defaults <- symbol <- account."""

    defaults: RiskLimits = RiskLimits()
    """Limits for every order that no override names. Default: ``RiskLimits()``'s documented defaults."""
    symbols: dict[Symbol, RiskLimitsOverride] = Field(default_factory=dict)
    """Overrides per symbol, for every account. Default: none."""
    accounts: dict[AccountId, RiskLimitsOverride] = Field(default_factory=dict)
    """Overrides per account, the most specific layer. Default: none."""

    def limits_for(self, account_id: str, symbol: str) -> RiskLimits:
        limits = self.defaults
        symbol_override = self.symbols.get(symbol)
        if symbol_override is not None:
            limits = symbol_override.apply_to(limits)
        account_override = self.accounts.get(account_id)
        if account_override is not None:
            limits = account_override.apply_to(limits)
        return limits


def parse_risk_config(raw: str | bytes, *, source: str = "risk config") -> RiskConfig:
    """JSON text -> ``RiskConfig``; JSON numbers are read through their decimal text (never a float).
    Raises ``ConfigError`` naming the source and the field."""
    try:
        data = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: malformed JSON: {exc}") from None
    try:
        return RiskConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(f"{source}: {loc}: {err['msg']}") from None


class RiskConfigSource:
    """Serves the current ``RiskConfig``, re-reading its origin at most every ``refresh_seconds``.

    The first load must succeed (``ConfigError`` otherwise). A later reload that fails (bad JSON after an
    edit, Redis briefly unreachable) keeps the last good config and logs the error, so a typo never turns
    into "no limits" or an outage; a missing file or key is an error, while a missing Redis key loads the
    defaults (``RiskConfig()``), so a fresh deployment runs with the documented defaults.
    """

    def __init__(
        self,
        client: redis.Redis | None = None,
        keys: Keys | None = None,
        *,
        path: str | Path | None = None,
        loader: Callable[[], RiskConfig] | None = None,
        refresh_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Where the config comes from, first match wins: ``loader``, the file at ``path``, the Redis key
        ``keys.risk_config`` through ``client`` (the usual deployment), else the fixed defaults.
        ``refresh_seconds`` (default 5) bounds how long an edit takes to apply."""
        if loader is None:
            if path is not None:
                loader = _file_loader(Path(path))
            elif client is not None:
                loader = _redis_loader(client, keys or Keys())
            else:
                fixed = RiskConfig()
                loader = lambda: fixed  # noqa: E731
        self._loader = loader
        self._refresh = refresh_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._config: RiskConfig | None = None
        self._loaded_at = 0.0

    @classmethod
    def static(cls, config: RiskConfig | None = None) -> RiskConfigSource:
        """A fixed config (tests, embedded use)."""
        fixed = config or RiskConfig()
        return cls(loader=lambda: fixed, refresh_seconds=float("inf"))

    @classmethod
    def from_file(cls, path: str | Path, *, refresh_seconds: float = 5.0, **kwargs: Any) -> RiskConfigSource:
        return cls(path=path, refresh_seconds=refresh_seconds, **kwargs)

    @classmethod
    def from_redis(
        cls, client: redis.Redis, keys: Keys, *, refresh_seconds: float = 5.0, **kwargs: Any
    ) -> RiskConfigSource:
        return cls(client, keys, refresh_seconds=refresh_seconds, **kwargs)

    def get(self) -> RiskConfig:
        now = self._monotonic()
        with self._lock:
            if self._config is not None and now - self._loaded_at < self._refresh:
                return self._config
            try:
                self._config = self._loader()
            except (ConfigError, StoreUnavailable) as exc:
                if self._config is None:
                    raise
                log.error("risk config reload failed, keeping the last good config: %s", exc)
            self._loaded_at = now
            return self._config


def _file_loader(file: Path) -> Callable[[], RiskConfig]:
    def load() -> RiskConfig:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"risk config file {file}: {exc.strerror or exc}") from None
        return parse_risk_config(raw, source=f"risk config file {file}")

    return load


def _redis_loader(client: redis.Redis, keys: Keys) -> Callable[[], RiskConfig]:
    key = keys.risk_config

    def load() -> RiskConfig:
        try:
            raw = client.get(key)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: reading the risk config at {key}: {exc}") from exc
        if raw is None:
            return RiskConfig()
        return parse_risk_config(raw, source=f"risk config at redis key {key}")

    return load


def save_risk_config(client: redis.Redis, keys: Keys, config: RiskConfig) -> None:
    """Store ``config`` at ``keys.risk_config``; workers pick it up within their ``refresh_seconds``."""
    client.set(keys.risk_config, config.model_dump_json(exclude_unset=True))
