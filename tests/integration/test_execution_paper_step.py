"""The execute step end to end on the paper venue and a real Redis: events out, book moved, breaker state
shared through Redis, reservations released through risk.reservations."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import redis

from zvt_pipeline.execution import build_execute_step
from zvt_pipeline.execution.circuit import CircuitBreakers, CircuitState, RedisCircuitStore
from zvt_pipeline.execution.config import CircuitConfig, ExecutionConfig, PaperVenueConfig
from zvt_pipeline.execution.decisions import RedisRouteDecisions
from zvt_pipeline.execution.step import ExecuteStep
from zvt_pipeline.execution.venues.paper import PaperVenue
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import (
    BookLevel,
    OrderBookUpdated,
    OrderCanceled,
    OrderExecuted,
    OrderRouted,
    OrderValidated,
    Reservation,
)
from zvt_pipeline.state.keys import Keys

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def put_book(client: redis.Redis, keys: Keys, venue: str, ask: str, depth: str = "1") -> None:
    book = OrderBookUpdated(
        venue=venue,
        symbol="BTC/USDT",
        bids=(BookLevel(price=D("49000"), amount=D("1")),),
        asks=(BookLevel(price=D(ask), amount=D(depth)),),
        timestamp=T0,
    )
    client.set(keys.book(venue, "BTC/USDT"), book.model_dump_json())


def validated(coid: str, amount: str) -> Envelope:
    order = OrderSpec(
        client_order_id=coid,
        account_id="acct",
        symbol="BTC/USDT",
        side="buy",
        type="market",
        amount=D(amount),
        created_at=T0,
    )
    payload = OrderValidated(order=order, reservation=Reservation(currency="USDT", amount=D("60000")))
    return Envelope.new(payload, stream_id=f"order-{coid}", correlation_id=f"run-{coid}")


def test_two_paper_venues_best_price_wins_and_the_remainder_is_canceled(redis_client, keys):
    put_book(redis_client, keys, "paper", ask="50100")
    put_book(redis_client, keys, "paper_b", ask="50000", depth="0.6")
    venues = {
        "paper": PaperVenue(redis_client, keys, clock=lambda: T0),
        "paper_b": PaperVenue(redis_client, keys, venue_id="paper_b", clock=lambda: T0),
    }
    released: list[tuple[str, str]] = []
    breakers = CircuitBreakers(CircuitConfig(), RedisCircuitStore(redis_client, keys))
    step = ExecuteStep(
        venues,
        release_all=lambda c, r: released.append((c, r)),
        breakers=breakers,
        decisions=RedisRouteDecisions(redis_client, keys),
    )
    trigger = validated("c1", "1")
    envelopes = step.handle(trigger)
    payloads = [e.payload for e in envelopes]
    assert [p.TYPE for p in payloads] == [
        "order.routed",
        "order.submitted",
        "order.executed",
        "order.canceled",
    ]
    routed = payloads[0]
    assert isinstance(routed, OrderRouted) and routed.venue == "paper_b"
    assert routed.reason.startswith("paper_b: best effective ask 50050")
    fill = payloads[2]
    assert isinstance(fill, OrderExecuted) and fill.amount == D("0.6") and fill.trade_id == "paper_b-c1-1"
    assert isinstance(payloads[3], OrderCanceled) and payloads[3].remaining == D("0.4")
    assert released == [("c1", "order.canceled")]
    assert all(e.stream_id == "order-c1" and e.correlation_id == "run-c1" for e in envelopes)
    # a re-delivery, even to another worker, routes to the same venue (although its book has moved) and
    # yields the same envelopes without taking more liquidity
    other_worker = ExecuteStep(
        venues,
        release_all=lambda c, r: None,
        breakers=breakers,
        decisions=RedisRouteDecisions(redis_client, keys),
    )
    again = other_worker.handle(trigger)
    assert [e.event_id for e in again] == [e.event_id for e in envelopes]
    assert [e.payload for e in again] == payloads
    assert PaperVenue(redis_client, keys, venue_id="paper_b").book("BTC/USDT").asks == ()


def test_breaker_state_is_shared_through_redis(redis_client, keys):
    now = [1000.0]
    a = CircuitBreakers(
        CircuitConfig(failure_threshold=2, cooldown_seconds=5),
        RedisCircuitStore(redis_client, keys),
        clock=lambda: now[0],
    )
    b = CircuitBreakers(
        CircuitConfig(failure_threshold=2, cooldown_seconds=5),
        RedisCircuitStore(redis_client, keys),
        clock=lambda: now[0],
    )
    a.record_failure("binance")
    b.record_failure("binance")  # another worker's failure counts too
    assert a.state("binance") is CircuitState.OPEN and not b.allow("binance")
    now[0] += 5
    assert a.allow("binance") and not b.allow("binance")  # one probe across workers
    b.record_success("binance")
    assert a.state("binance") is CircuitState.CLOSED and a.allow("binance")


def test_build_execute_step_releases_through_risk_reservations(redis_client, keys):
    # a reservation as risk writes it (state/keys.py value formats)
    redis_client.hset(
        keys.reservation("c9"),
        mapping={"account": "acct", "currency": "USDT", "initial": "60000", "remaining": "60000"},
    )
    redis_client.hset(keys.reserved("acct"), "USDT", "60000")
    config = ExecutionConfig(venues=(PaperVenueConfig(),))
    step = build_execute_step(redis_client, keys, config)
    out = step.run(validated("c9", "1"))  # no book yet: no route
    assert [p.TYPE for p in out] == ["order.failed"] and out[0].error_code == "no_route"  # type: ignore[attr-defined]
    assert redis_client.hget(keys.reserved("acct"), "USDT") is None  # nothing held any more
    assert D(redis_client.hget(keys.reservation("c9"), "remaining").decode()) == 0
    assert redis_client.hget(keys.reservation("c9"), "all:no_route") is not None
    assert step.run(validated("c9", "1")) == out  # sticky decision, released once
