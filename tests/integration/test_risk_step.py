"""The risk step end to end on a real Redis: snapshot, engine, reservation, replay of retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
import redis

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.markets import load_markets_file
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import (
    BookLevel,
    OrderBookUpdated,
    OrderRejected,
    OrderRequested,
    OrderValidated,
    PriceUpdated,
)
from zvt_pipeline.messages.types import OrderType, Side, TradingState
from zvt_pipeline.risk.config import RiskConfig, RiskConfigSource, RiskLimits, save_risk_config
from zvt_pipeline.risk.engine import ATOMIC_RULES, ENGINE_RULES
from zvt_pipeline.risk.reservations import Reservations
from zvt_pipeline.risk.snapshot import get_trading_state, read_snapshot, set_trading_state
from zvt_pipeline.risk.step import RiskStep
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.step import order_stream

D = Decimal
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def order(coid: str = "c1", **kw: Any) -> OrderSpec:
    base: dict[str, Any] = {
        "client_order_id": coid,
        "account_id": "acc",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "amount": D("0.1"),
        "price": D("60000"),
        "created_at": NOW,
    }
    base.update(kw)
    return OrderSpec(**base)


def trigger(o: OrderSpec, run_id: str | None = None) -> Envelope:
    return Envelope.new(
        OrderRequested(order=o),
        stream_id=order_stream(o.client_order_id),
        correlation_id=run_id or f"run-{o.client_order_id}",
    )


@pytest.fixture
def world(redis_client: redis.Redis, keys: Keys) -> redis.Redis:
    redis_client.hset(keys.balance("acc"), mapping={"USDT": "10000"})
    redis_client.hset(keys.marks, "paper|BTC/USDT", "60000")
    book = OrderBookUpdated(
        venue="paper",
        symbol="BTC/USDT",
        bids=(BookLevel(price=D("59990"), amount=D("1")),),
        asks=(BookLevel(price=D("60010"), amount=D("1")),),
    )
    redis_client.set(keys.book("paper", "BTC/USDT"), book.model_dump_json())
    return redis_client


def make_step(client: redis.Redis, keys: Keys, config: RiskConfig | None = None, **kw: Any) -> RiskStep:
    source = (
        RiskConfigSource.static(config)
        if config is not None
        else RiskConfigSource(client, keys, refresh_seconds=0)
    )
    return RiskStep(client, keys, source, load_markets_file(), kw.pop("clock", Clock()), **kw)


def test_validated_with_reservation_and_all_checks(world: redis.Redis, keys: Keys) -> None:
    step = make_step(world, keys)
    [event] = step.handle(trigger(order()))
    payload = event.payload
    assert isinstance(payload, OrderValidated)
    assert payload.reservation.currency == "USDT" and payload.reservation.amount == D("6006")
    assert payload.checks == ENGINE_RULES + ATOMIC_RULES
    assert event.stream_id == "order-c1" and event.correlation_id == "run-c1"
    assert world.hget(keys.reserved("acc"), "USDT") == b"6006"


def test_retry_of_the_same_trigger_returns_the_same_event_and_reserves_once(
    world: redis.Redis, keys: Keys
) -> None:
    clock = Clock()
    step = make_step(world, keys, clock=clock)
    t = trigger(order())
    first = step.handle(t)
    clock.now = NOW + timedelta(minutes=10)  # the intent is stale by now: the retry still replays
    world.hset(keys.trading_state, "*", "HALTED")
    again = step.handle(t)
    assert [e.event_id for e in again] == [e.event_id for e in first]
    assert again[0].payload == first[0].payload
    assert world.hget(keys.reserved("acc"), "USDT") == b"6006"


def test_rejection_is_recorded_and_replayed(world: redis.Redis, keys: Keys) -> None:
    save_risk_config(world, keys, RiskConfig(defaults=RiskLimits(max_order_notional=D("5000"))))
    step = make_step(world, keys)
    t = trigger(order())
    [event] = step.handle(t)
    assert isinstance(event.payload, OrderRejected)
    assert event.payload.rule == "max_notional"
    assert event.payload.reason.startswith("notional 6000 USDT > max 5000 USDT")
    assert event.payload.details["max"] == "5000"
    # the limit is lifted, but this run already decided: same rejection, nothing reserved
    save_risk_config(world, keys, RiskConfig())
    [again] = step.handle(t)
    assert again.payload == event.payload and again.event_id == event.event_id
    assert world.hget(keys.reserved("acc"), "USDT") is None
    # a new run with a new client order id passes under the new config (no restart)
    [fresh] = step.handle(trigger(order("c2")))
    assert isinstance(fresh.payload, OrderValidated)


def test_config_change_in_redis_applies_without_restart(world: redis.Redis, keys: Keys) -> None:
    step = make_step(world, keys)
    assert isinstance(step.handle(trigger(order("c1")))[0].payload, OrderValidated)
    save_risk_config(world, keys, RiskConfig(defaults=RiskLimits(allowed_symbols=frozenset({"ETH/USDT"}))))
    rejected = step.handle(trigger(order("c2", amount=D("0.01"))))[0].payload
    assert isinstance(rejected, OrderRejected) and rejected.rule == "symbol_allowed"


def test_duplicate_client_order_id_from_another_run(world: redis.Redis, keys: Keys) -> None:
    step = make_step(world, keys)
    step.handle(trigger(order(), run_id="run-a"))
    [dup] = step.handle(trigger(order(), run_id="run-b"))
    assert isinstance(dup.payload, OrderRejected)
    assert dup.payload.rule == "duplicate_client_order_id"
    assert "already used by run run-a" in dup.payload.reason
    assert world.hget(keys.reserved("acc"), "USDT") == b"6006"


def test_free_balance_rejection_names_the_numbers(world: redis.Redis, keys: Keys) -> None:
    step = make_step(world, keys)
    [event] = step.handle(trigger(order(amount=D("0.2"))))
    assert isinstance(event.payload, OrderRejected)
    assert event.payload.rule == "free_balance"
    assert event.payload.reason == "free USDT 10000 < required 12012 USDT (balance 10000, reserved 0)"


def test_trading_state_halts_and_reducing_lets_reducing_orders_through(
    world: redis.Redis, keys: Keys
) -> None:
    step = make_step(world, keys)
    set_trading_state(world, keys, TradingState.HALTED)
    assert get_trading_state(world, keys) is TradingState.HALTED
    [halted] = step.handle(trigger(order("c1")))
    assert isinstance(halted.payload, OrderRejected) and halted.payload.rule == "trading_state"
    set_trading_state(world, keys, TradingState.ACTIVE)
    set_trading_state(world, keys, TradingState.REDUCING, "acc")
    world.hset(
        keys.position("acc"), "paper|BTC/USDT", orjson.dumps({"amount": "0.3", "avg_entry_price": "50000"})
    )
    [buy] = step.handle(trigger(order("c2")))
    assert isinstance(buy.payload, OrderRejected) and "REDUCING (account acc)" in buy.payload.reason
    [sell] = step.handle(trigger(order("c3", side=Side.SELL, amount=D("0.3"))))
    assert isinstance(sell.payload, OrderValidated)
    assert (sell.payload.reservation.currency, sell.payload.reservation.amount) == ("BTC", D("0.3"))


def test_market_order_without_venue_uses_the_candidate_venues_books(world: redis.Redis, keys: Keys) -> None:
    other = OrderBookUpdated(
        venue="binance",
        symbol="BTC/USDT",
        bids=(BookLevel(price=D("59980"), amount=D("1")),),
        asks=(BookLevel(price=D("60020"), amount=D("1")),),
    )
    world.set(keys.book("binance", "BTC/USDT"), other.model_dump_json())
    step = make_step(world, keys, venues=("paper", "binance"))
    [event] = step.handle(trigger(order(type=OrderType.MARKET, price=None, amount=D("0.01"))))
    assert isinstance(event.payload, OrderValidated)
    # the worse ask of the two venues (60020), plus the 10 % band, plus the taker fee
    assert event.payload.reservation.amount == D("0.01") * D("60020") * D("1.1") * D("1.001")


def test_read_snapshot_in_one_go(world: redis.Redis, keys: Keys) -> None:
    world.hset(keys.reserved("acc"), "USDT", "100")
    world.hset(
        keys.position("acc"),
        mapping={
            "paper|BTC/USDT": orjson.dumps({"amount": "-0.5", "avg_entry_price": "61000"}),
            "paper|ETH/USDT": orjson.dumps({"amount": "2", "avg_entry_price": "3000"}),
        },
    )
    world.hset(
        keys.marks,
        "paper|ETH/USDT",
        str(PriceUpdated(venue="paper", symbol="ETH/USDT", price=D("3100")).price),
    )
    s = read_snapshot(world, keys, order(venue="paper"))
    assert (s.mark, s.best_bid, s.best_ask, s.position) == (D("60000"), D("59990"), D("60010"), D("-0.5"))
    assert s.gross_exposure == D("30000") + D("6200")
    assert s.free("USDT") == D("9900")


def test_wrong_trigger_type_is_invalid(world: redis.Redis, keys: Keys) -> None:
    step = make_step(world, keys)
    wrong = Envelope.new(
        PriceUpdated(venue="paper", symbol="BTC/USDT", price=D("1")), stream_id="md", correlation_id="r"
    )
    with pytest.raises(InvalidMessage, match="type"):
        step.handle(wrong)


def test_release_after_validation_frees_the_funds_for_the_next_order(world: redis.Redis, keys: Keys) -> None:
    step = make_step(world, keys)
    assert isinstance(step.handle(trigger(order("c1", amount=D("0.15"))))[0].payload, OrderValidated)
    assert isinstance(step.handle(trigger(order("c2")))[0].payload, OrderRejected)
    Reservations(world, keys).release_all("c1", "canceled")
    assert isinstance(step.handle(trigger(order("c3")))[0].payload, OrderValidated)
