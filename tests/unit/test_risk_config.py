"""Risk config: defaults, override precedence, exact JSON parsing, and reloading without restart."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from zvt_pipeline.errors import ConfigError
from zvt_pipeline.risk.config import (
    RiskConfig,
    RiskConfigSource,
    RiskLimits,
    RiskLimitsOverride,
    parse_risk_config,
)

D = Decimal


def test_defaults_are_documented_values() -> None:
    limits = RiskLimits()
    assert limits.allowed_symbols is None
    assert limits.max_order_notional is None
    assert limits.max_orders_per_window == 100 and limits.rate_window_seconds == 1.0
    assert limits.price_band_pct == D("0.10")
    assert limits.require_mark and limits.enforce_reduce_only
    assert limits.stale_grace_seconds == 0
    # every field of RiskLimits carries a docstring and has an override counterpart
    assert set(RiskLimitsOverride.model_fields) == set(RiskLimits.model_fields)


def test_frozen_and_unknown_fields_rejected() -> None:
    with pytest.raises(ValidationError):
        RiskLimits(max_notional=D("1"))  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RiskLimits().max_order_notional = D("1")  # type: ignore[misc]
    with pytest.raises(ValidationError):
        RiskLimits(max_order_notional=D("-1"))
    with pytest.raises(ValidationError):
        RiskLimits(price_band_pct=D("NaN"))


def test_precedence_defaults_then_symbol_then_account() -> None:
    cfg = RiskConfig(
        defaults=RiskLimits(max_order_notional=D("100"), max_position_notional=D("1000")),
        symbols={"BTC/USDT": RiskLimitsOverride(max_order_notional=D("200"), price_band_pct=D("0.02"))},
        accounts={"a": RiskLimitsOverride(max_order_notional=D("300"))},
    )
    assert cfg.limits_for("x", "ETH/USDT").max_order_notional == D("100")
    btc_x = cfg.limits_for("x", "BTC/USDT")
    assert (btc_x.max_order_notional, btc_x.price_band_pct) == (D("200"), D("0.02"))
    btc_a = cfg.limits_for("a", "BTC/USDT")
    # account wins for the field it names; the symbol layer still applies to the others
    assert (btc_a.max_order_notional, btc_a.price_band_pct) == (D("300"), D("0.02"))
    assert btc_a.max_position_notional == D("1000")
    assert cfg.limits_for("a", "ETH/USDT").max_order_notional == D("300")


def test_explicit_null_lifts_a_limit_but_not_a_required_setting() -> None:
    cfg = parse_risk_config(
        b'{"defaults": {"max_order_notional": "100", "price_band_pct": "0.05"},'
        b' "accounts": {"vip": {"max_order_notional": null, "price_band_pct": null, "require_mark": null}}}'
    )
    vip = cfg.limits_for("vip", "BTC/USDT")
    assert vip.max_order_notional is None and vip.price_band_pct is None
    assert vip.require_mark is True
    assert cfg.limits_for("other", "BTC/USDT").max_order_notional == D("100")


def test_json_numbers_are_read_exactly() -> None:
    cfg = parse_risk_config('{"defaults": {"max_order_notional": 0.1, "price_band_pct": 0.3}}')
    assert cfg.defaults.max_order_notional == D("0.1")
    assert cfg.defaults.price_band_pct == D("0.3")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{not json", "malformed JSON"),
        ('{"defaults": {"max_order_notional": "-5"}}', "defaults.max_order_notional"),
        ('{"accounts": {"a": {"bogus": 1}}}', "accounts.a.bogus"),
        ('{"symbols": {"btc-usdt": {}}}', "symbols.btc-usdt"),
    ],
)
def test_bad_config_names_the_field(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="test source") as info:
        parse_risk_config(raw, source="test source")
    assert fragment in str(info.value)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_file_source_reloads_after_refresh_seconds(tmp_path: Path) -> None:
    path = tmp_path / "risk.json"
    path.write_text('{"defaults": {"max_order_notional": "100"}}')
    clock = Clock()
    source = RiskConfigSource.from_file(path, refresh_seconds=5, monotonic=clock)
    assert source.get().defaults.max_order_notional == D("100")
    path.write_text('{"defaults": {"max_order_notional": "200"}}')
    clock.t = 4.9
    assert source.get().defaults.max_order_notional == D("100")  # cached
    clock.t = 5.0
    assert source.get().defaults.max_order_notional == D("200")  # re-read, no restart


def test_bad_reload_keeps_last_good_config(tmp_path: Path) -> None:
    path = tmp_path / "risk.json"
    path.write_text('{"defaults": {"max_order_notional": "100"}}')
    clock = Clock()
    source = RiskConfigSource(path=path, refresh_seconds=1, monotonic=clock)
    assert source.get().defaults.max_order_notional == D("100")
    path.write_text('{"defaults": {"max_order_notional": "oops"}}')
    clock.t = 2
    assert source.get().defaults.max_order_notional == D("100")
    path.write_text('{"defaults": {"max_order_notional": "300"}}')
    clock.t = 4
    assert source.get().defaults.max_order_notional == D("300")


def test_first_load_failure_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json"):
        RiskConfigSource(path=tmp_path / "missing.json").get()


def test_static_and_default_sources() -> None:
    cfg = RiskConfig(defaults=RiskLimits(max_order_notional=D("1")))
    assert RiskConfigSource.static(cfg).get() is cfg
    assert RiskConfigSource().get() == RiskConfig()
