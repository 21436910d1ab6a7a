"""Every pure risk rule, passing and failing, with the numbers in the reason; and what gets reserved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from zvt_pipeline.markets import Market, MarketLimits, load_markets_file
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.types import OrderType, Side, TradingState
from zvt_pipeline.risk.config import RiskConfig, RiskLimits, RiskLimitsOverride
from zvt_pipeline.risk.engine import ENGINE_RULES, RiskDecision, RiskEngine, fmt
from zvt_pipeline.risk.snapshot import RiskSnapshot

D = Decimal
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
MARKETS = load_markets_file()


def order(**kw: Any) -> OrderSpec:
    base: dict[str, Any] = {
        "client_order_id": "c1",
        "account_id": "acc",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "amount": D("0.1"),
        "price": D("60000"),
        "created_at": NOW,
    }
    base.update(kw)
    if base["type"] is OrderType.MARKET and "price" not in kw:
        base["price"] = None
    return OrderSpec(**base)


def snap(**kw: Any) -> RiskSnapshot:
    base: dict[str, Any] = {"mark": D("60000"), "best_bid": D("59990"), "best_ask": D("60010")}
    base.update(kw)
    return RiskSnapshot(**base)


def check(
    o: OrderSpec, s: RiskSnapshot | None = None, *, limits: RiskLimits | None = None, **cfg: Any
) -> RiskDecision:
    config = RiskConfig(defaults=limits or RiskLimits(), **cfg)
    return RiskEngine(config, MARKETS).check(o, s or snap(), NOW)


def rejected(decision: RiskDecision, rule: str) -> str:
    assert not decision.approved, decision
    assert decision.rule == rule, (decision.rule, decision.reason)
    # every rule before the failing one passed, in order
    assert decision.checks == ENGINE_RULES[: ENGINE_RULES.index(rule)]
    return decision.reason


def test_plain_limit_buy_passes_every_rule_and_reserves_quote_with_fee() -> None:
    d = check(order())
    assert d.approved and d.checks == ENGINE_RULES
    assert d.reservation is not None
    assert d.reservation.currency == "USDT"
    assert d.reservation.amount == D("0.1") * D("60000") * D("1.001") == D("6006")
    assert d.held_against == "cash"


# --- trading state ---------------------------------------------------------------------------------


def test_halted_globally_denies_all() -> None:
    reason = rejected(check(order(), snap(global_state=TradingState.HALTED)), "trading_state")
    assert reason == "trading is HALTED (global): no new orders"


def test_halted_account_denies_even_reducing_orders() -> None:
    s = snap(account_state=TradingState.HALTED, position=D("1"))
    reason = rejected(check(order(side=Side.SELL), s), "trading_state")
    assert "HALTED (account acc)" in reason


def test_reducing_allows_only_shrinking_orders() -> None:
    s = snap(global_state=TradingState.REDUCING, position=D("0.5"))
    assert check(order(side=Side.SELL, amount=D("0.5")), s).approved
    reason = rejected(check(order(side=Side.SELL, amount=D("0.6")), s), "trading_state")
    assert (
        reason
        == "trading is REDUCING (global): sell 0.6 would not reduce position 0.5 (it would become -0.1)"
    )
    reason = rejected(check(order(side=Side.BUY, amount=D("0.1")), s), "trading_state")
    assert "buy 0.1 would not reduce position 0.5 (it would become 0.6)" in reason
    flat = snap(account_state=TradingState.REDUCING)
    assert "REDUCING (account acc)" in rejected(check(order(), flat), "trading_state")


def test_account_state_stricter_than_global_wins_and_vice_versa() -> None:
    assert snap(global_state=TradingState.ACTIVE, account_state=TradingState.REDUCING).trading_state is (
        TradingState.REDUCING
    )
    assert snap(global_state=TradingState.HALTED, account_state=TradingState.ACTIVE).trading_state is (
        TradingState.HALTED
    )


# --- stale intent ---------------------------------------------------------------------------------


def test_stale_intent() -> None:
    fresh = order(created_at=NOW - timedelta(seconds=30), ttl_seconds=30)
    assert check(fresh).approved  # exactly at expiry: still valid
    stale = order(created_at=NOW - timedelta(seconds=31), ttl_seconds=30)
    reason = rejected(check(stale), "stale_intent")
    assert "created 31.000 s ago, ttl 30 s + grace 0 s" in reason
    assert "expired at 2024-05-01T11:59:59+00:00" in reason
    assert check(stale, limits=RiskLimits(stale_grace_seconds=2)).approved


# --- symbol / market --------------------------------------------------------------------------------


def test_unknown_symbol_and_allow_list() -> None:
    reason = rejected(check(order(symbol="DOGE/USDT")), "symbol_allowed")
    assert reason == "unknown symbol DOGE/USDT: no market (known: BTC/USDT, ETH/USDT, SOL/USDT)"
    limits = RiskLimits(allowed_symbols=frozenset({"ETH/USDT"}))
    reason = rejected(check(order(), limits=limits), "symbol_allowed")
    assert reason == "symbol BTC/USDT is not allowed for account acc (allowed: ETH/USDT)"
    assert check(order(), limits=RiskLimits(allowed_symbols=frozenset({"BTC/USDT"}))).approved


def test_inactive_market() -> None:
    markets = {**MARKETS, "BTC/USDT": MARKETS["BTC/USDT"].model_copy(update={"active": False})}
    d = RiskEngine(RiskConfig(), markets).check(order(), snap(), NOW)
    assert rejected(d, "market_active") == "market BTC/USDT is not active"


# --- precision and market limits ----------------------------------------------------------------------


def test_amount_precision() -> None:
    reason = rejected(check(order(amount=D("0.123456"))), "amount_precision")
    assert reason == "amount 0.123456 is not a multiple of the amount step 0.00001"
    assert check(order(amount=D("0.12345"))).approved


def test_price_precision() -> None:
    reason = rejected(check(order(price=D("60000.005"))), "price_precision")
    assert reason == "price 60000.005 is not a multiple of the price step 0.01"


def _market(**limits: Any) -> dict[str, Market]:
    m = MARKETS["BTC/USDT"].model_copy(update={"limits": MarketLimits(**limits)})
    return {"BTC/USDT": m}


def test_min_and_max_amount() -> None:
    markets = _market(amount_min=D("0.01"), amount_max=D("2"))
    engine = RiskEngine(RiskConfig(), markets)
    reason = rejected(engine.check(order(amount=D("0.005")), snap(), NOW), "min_amount")
    assert reason == "amount 0.005 BTC < min 0.01 BTC"
    reason = rejected(engine.check(order(amount=D("2.5")), snap(), NOW), "max_amount")
    assert reason == "amount 2.5 BTC > max 2 BTC"
    assert engine.check(order(amount=D("2")), snap(), NOW).approved


def test_market_order_needs_a_reference_price() -> None:
    d = check(order(type=OrderType.MARKET), RiskSnapshot())
    assert rejected(d, "reference_price") == "market order in BTC/USDT: no book and no mark to price it at"
    # the mark alone is enough
    assert check(order(type=OrderType.MARKET), RiskSnapshot(mark=D("60000"))).approved


def test_min_notional() -> None:
    reason = rejected(check(order(amount=D("0.00008"))), "min_notional")
    assert reason == "notional 4.8 USDT < min 5 USDT (0.00008 at 60000)"


def test_max_notional_from_config_and_from_market() -> None:
    limits = RiskLimits(max_order_notional=D("50000"))
    reason = rejected(check(order(amount=D("1.16667")), limits=limits), "max_notional")
    assert reason.startswith("notional 70000.2 USDT > max 50000 USDT (risk config")
    assert check(order(amount=D("0.8")), limits=limits).approved
    engine = RiskEngine(RiskConfig(), _market(cost_max=D("1000")))
    reason = rejected(engine.check(order(), snap(), NOW), "max_notional")
    assert reason == "notional 6000 USDT > max 1000 USDT (market; 0.1 at 60000)"


def test_market_buy_is_valued_at_best_ask_and_market_sell_at_best_bid() -> None:
    limits = RiskLimits(max_order_notional=D("6000.5"))
    reason = rejected(check(order(type=OrderType.MARKET), limits=limits), "max_notional")
    assert "notional 6001 USDT" in reason  # 0.1 * 60010
    assert check(order(type=OrderType.MARKET, side=Side.SELL), limits=limits).approved  # 0.1 * 59990


# --- price band -----------------------------------------------------------------------------------------


def test_limit_price_band_both_directions() -> None:
    reason = rejected(check(order(price=D("70000"))), "price_band")
    assert reason == "limit price 70000 is 16.67% from mark 60000 (band 10%)"
    assert rejected(check(order(price=D("50000"))), "price_band").startswith("limit price 50000 is 16.67%")
    assert check(order(price=D("66000"))).approved  # exactly 10 %
    assert check(order(price=D("70000")), limits=RiskLimits(price_band_pct=None)).approved


def test_market_order_band_uses_the_best_price() -> None:
    broken_book = snap(best_ask=D("66600"), best_bid=D("59990"))
    reason = rejected(check(order(type=OrderType.MARKET), broken_book), "price_band")
    assert reason == "best ask 66600 is 11% from mark 60000 (band 10%)"
    assert check(order(type=OrderType.MARKET, side=Side.SELL), broken_book).approved


def test_no_mark_fails_closed_unless_configured() -> None:
    no_mark = RiskSnapshot()
    reason = rejected(check(order(), no_mark), "price_band")
    assert reason == "no mark for BTC/USDT: the 10% price band cannot be checked"
    assert check(order(), no_mark, limits=RiskLimits(require_mark=False)).approved
    # without a mark the mid of the book serves as one
    assert check(order(), RiskSnapshot(best_bid=D("59990"), best_ask=D("60010"))).approved


# --- reduce only ---------------------------------------------------------------------------------------


def test_reduce_only() -> None:
    s = snap(position=D("-0.05"))
    reason = rejected(check(order(reduce_only=True), s), "reduce_only")
    assert reason == "reduce_only buy 0.1 would not reduce position -0.05 (it would become 0.05)"
    assert check(order(reduce_only=True, amount=D("0.05")), s).approved
    assert check(order(reduce_only=True), s, limits=RiskLimits(enforce_reduce_only=False)).approved


# --- position and exposure -----------------------------------------------------------------------------


def test_max_position() -> None:
    limits = RiskLimits(max_position_notional=D("30000"))
    s = snap(position=D("0.45"))
    reason = rejected(check(order(), s, limits=limits), "max_position")
    assert reason == "position 0.55 BTC = 33000 USDT at 60000 > max 30000 USDT"
    assert check(order(amount=D("0.05")), s, limits=limits).approved
    # already above the limit: a reducing order still passes
    big = snap(position=D("1"))
    assert check(order(side=Side.SELL), big, limits=limits).approved
    # a short counts by its absolute size
    reason = rejected(check(order(side=Side.SELL), snap(position=D("-0.45")), limits=limits), "max_position")
    assert reason.startswith("position -0.55 BTC = 33000 USDT")


def test_max_gross_exposure() -> None:
    limits = RiskLimits(max_gross_exposure=D("100000"))
    s = snap(position=D("0.5"), gross_exposure=D("95000"))  # 30000 of it in BTC
    reason = rejected(check(order(), s, limits=limits), "max_gross_exposure")
    assert reason == "gross exposure 101000 USDT after the order > max 100000 USDT (now 95000)"
    assert check(order(amount=D("0.08")), s, limits=limits).approved  # 99800
    assert check(order(side=Side.SELL), s, limits=limits).approved  # shrinks


# --- precedence of overrides (engine sees the effective limits) ------------------------------------------


def test_account_override_beats_symbol_override() -> None:
    cfg = RiskConfig(
        defaults=RiskLimits(max_order_notional=D("1000")),
        symbols={"BTC/USDT": RiskLimitsOverride(max_order_notional=D("5000"))},
        accounts={"acc": RiskLimitsOverride(max_order_notional=D("7000"))},
    )
    engine = RiskEngine(cfg, MARKETS)
    assert engine.check(order(), snap(), NOW).approved  # 6000 <= 7000 (account)
    other = engine.check(order(account_id="other"), snap(), NOW)
    assert other.rule == "max_notional" and "max 5000 USDT" in other.reason  # symbol layer


# --- reservations -------------------------------------------------------------------------------------


def test_market_buy_reserves_at_best_ask_plus_band_plus_fee() -> None:
    d = check(order(type=OrderType.MARKET))
    assert d.reservation is not None
    assert d.reservation.amount == D("0.1") * D("60010") * D("1.1") * D("1.001")
    assert fmt(d.reservation.amount) == "6607.7011"


def test_sell_reducing_a_long_holds_base_against_the_position() -> None:
    d = check(order(side=Side.SELL, amount=D("0.1")), snap(position=D("0.1")))
    assert d.reservation is not None
    assert (d.reservation.currency, d.reservation.amount, d.held_against) == ("BTC", D("0.1"), "position")


def test_sell_opening_or_flipping_a_short_holds_quote_collateral() -> None:
    for position in (D("0"), D("0.05"), D("-1")):
        d = check(order(side=Side.SELL, amount=D("0.1")), snap(position=position))
        assert d.reservation is not None
        assert (d.reservation.currency, d.reservation.amount, d.held_against) == ("USDT", D("6006"), "cash")


def test_reservation_is_exact_and_never_rounded_down() -> None:
    d = check(order(amount=D("0.00011"), price=D("59999.99")))
    assert d.reservation is not None
    assert d.reservation.amount == D("0.00011") * D("59999.99") * D("1.001")


def test_every_rule_is_reachable_and_named() -> None:
    # guards against a rule added to ENGINE_RULES without a method (getattr would raise)
    assert len(set(ENGINE_RULES)) == len(ENGINE_RULES)
    assert check(order()).checks == ENGINE_RULES


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_decision_details_are_strings_with_exact_numbers(side: Side) -> None:
    d = check(order(side=side, price=D("70000")))
    assert d.details == {"price": "70000", "mark": "60000", "deviation": "0.166667", "band": "0.1"}
