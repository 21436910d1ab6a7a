"""ExecuteStep: event sequences, lookup-before-submit, error mapping, reservation release."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from tests.unit.test_execution_router import StubVenue, validated
from zvt_pipeline.errors import AmbiguousSubmit, InvalidMessage, VenueRetryable, VenueTerminal
from zvt_pipeline.execution.circuit import CircuitBreakers, CircuitState
from zvt_pipeline.execution.config import CircuitConfig, ExecutionConfig
from zvt_pipeline.execution.step import ExecuteStep
from zvt_pipeline.execution.venues.base import VenueOrder, VenueTrade
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import (
    OrderCanceled,
    OrderExecuted,
    OrderFailed,
    OrderRouted,
    OrderSubmitted,
    OrderUnknown,
    Payload,
)
from zvt_pipeline.messages.types import Fee, Liquidity

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def trade(n: int, amount: str, price: str = "100") -> VenueTrade:
    return VenueTrade(
        trade_id=f"t{n}",
        amount=D(amount),
        price=D(price),
        fee=Fee(cost=D("0.1"), currency="USDT"),
        liquidity=Liquidity.TAKER,
        timestamp=T0,
    )


def venue_order(venue: str, status: str, filled: str, *trades: VenueTrade) -> VenueOrder:
    return VenueOrder(
        venue=venue,
        venue_order_id="V1",
        client_order_id="c1",
        symbol="BTC/USDT",
        status=status,
        amount=D("1"),
        filled=D(filled),
        remaining=D(1) - D(filled),
        average=D("100") if trades else None,
        trades=trades,
    )


def envelope(payload: Payload) -> Envelope:
    return Envelope.new(payload, stream_id="order-c1", correlation_id="run-1")


class Releases(list[tuple[str, str]]):
    def __call__(self, coid: str, reason_key: str) -> None:
        self.append((coid, reason_key))


def make(*venues: StubVenue) -> tuple[ExecuteStep, Releases, CircuitBreakers]:
    releases = Releases()
    breakers = CircuitBreakers(CircuitConfig(failure_threshold=2))
    cfg = ExecutionConfig(ambiguous_lookups=2, ambiguous_lookup_delay_seconds=0)
    step = ExecuteStep(
        {v.name: v for v in venues}, release_all=releases, breakers=breakers, config=cfg, sleep=lambda s: None
    )
    return step, releases, breakers


def types(payloads: list[Payload]) -> list[str]:
    return [p.TYPE for p in payloads]


def test_validated_partial_market_fill_routes_submits_fills_and_cancels_remainder():
    v = StubVenue("v")
    v.create_results = [venue_order("v", "canceled", "0.7", trade(1, "0.3"), trade(2, "0.4", "101"))]
    step, releases, _ = make(v)
    out = step.run(envelope(validated()))
    assert types(out) == [
        "order.routed",
        "order.submitted",
        "order.executed",
        "order.executed",
        "order.canceled",
    ]
    assert v.calls == ["quote", "lookup", "create"]
    fills = [p for p in out if isinstance(p, OrderExecuted)]
    assert [(f.trade_id, f.filled_total, f.order_amount) for f in fills] == [
        ("t1", D("0.3"), D("1")),
        ("t2", D("0.7"), D("1")),
    ]
    assert (
        isinstance(out[1], OrderSubmitted) and out[1].venue_order_id == "V1" and out[1].status == "canceled"
    )
    assert isinstance(out[-1], OrderCanceled) and out[-1].remaining == D("0.3")
    assert releases == [("c1", "order.canceled")]


def test_full_fill_has_no_cancel_and_no_release():
    v = StubVenue("v", create_results=[venue_order("v", "closed", "1", trade(1, "1"))])
    step, releases, _ = make(v)
    assert types(step.run(envelope(validated()))) == ["order.routed", "order.submitted", "order.executed"]
    assert releases == []


def test_existing_order_is_never_created_twice():
    v = StubVenue("v", create_results=[venue_order("v", "closed", "1", trade(1, "1"))])
    step, _, _ = make(v)
    first = step.run(envelope(validated()))
    again = step.run(envelope(validated()))  # a retried / resumed step
    assert v.calls.count("create") == 1
    assert types(first) == types(again)
    # and the envelopes are identical by id: the store drops the duplicates
    trig = envelope(validated())
    assert [e.event_id for e in step.handle(trig)] == [e.event_id for e in step.handle(trig)]


def test_routed_trigger_executes_only():
    v = StubVenue("v", create_results=[venue_order("v", "open", "0")])
    step, _, _ = make(v)
    routed = step.route(envelope(validated()))
    assert isinstance(routed[0], OrderRouted)
    out = step.run(envelope(routed[0]))
    assert types(out) == ["order.submitted"] and v.calls == ["quote", "lookup", "create"]


def test_terminal_error_becomes_order_failed_and_releases():
    err = VenueTerminal("v: InsufficientFunds: no money")
    err.code = "insufficient_funds"
    v = StubVenue("v", create_results=[err])
    step, releases, breakers = make(v)
    out = step.run(envelope(validated()))
    assert types(out) == ["order.routed", "order.failed"]
    failed = out[1]
    assert (
        isinstance(failed, OrderFailed) and failed.error_code == "insufficient_funds" and not failed.retryable
    )
    assert releases == [("c1", "order.failed")]
    assert breakers.state("v") is CircuitState.CLOSED


def test_retryable_error_propagates_and_counts_against_health():
    v = StubVenue("v", create_results=[VenueRetryable("rate limited"), VenueRetryable("rate limited")])
    step, releases, breakers = make(v)
    for _ in range(2):
        with pytest.raises(VenueRetryable):
            step.run(envelope(validated()))
    assert breakers.state("v") is CircuitState.OPEN and releases == []


def test_ambiguous_submit_is_resolved_by_lookup_without_a_second_create():
    found = venue_order("v", "closed", "1", trade(1, "1"))
    v = StubVenue("v", create_results=[AmbiguousSubmit("timeout")])
    v.lookup_results = [None, VenueRetryable("still down"), found]  # pre-submit lookup, then 2 after
    step, _, _ = make(v)
    out = step.run(envelope(validated()))
    assert types(out) == ["order.routed", "order.submitted", "order.executed"]
    assert v.calls.count("create") == 1


def test_ambiguous_submit_unresolved_becomes_order_unknown():
    v = StubVenue("v", create_results=[AmbiguousSubmit("timeout")])
    step, releases, _ = make(v)
    out = step.run(envelope(validated()))
    assert types(out) == ["order.routed", "order.unknown"]
    assert isinstance(out[1], OrderUnknown) and "2 lookups" in out[1].reason
    assert v.calls.count("create") == 1 and releases == []  # funds stay held until resolved


def test_no_route_fails_and_releases():
    step, releases, _ = make(StubVenue("v", ask=None))
    out = step.run(envelope(validated()))
    assert types(out) == ["order.failed"] and out[0].error_code == "no_route"  # type: ignore[attr-defined]
    assert releases == [("c1", "no_route")]


def test_wrong_trigger_type_is_invalid():
    step, _, _ = make(StubVenue("v"))
    bad = envelope(OrderCanceled(client_order_id="c1", account_id="a1"))
    with pytest.raises(InvalidMessage):
        step.handle(bad)


def test_routing_is_sticky_across_reruns_even_when_prices_move():
    a = StubVenue("aaa", ask=D("100"), create_results=[venue_order("aaa", "closed", "1", trade(1, "1"))])
    b = StubVenue("bbb", ask=D("101"))
    step, _, _ = make(a, b)
    first = step.run(envelope(validated()))
    a.ask = D("200")  # after the fill, aaa looks worse; a re-run must still go to aaa (and find the order)
    again = step.run(envelope(validated()))
    assert first[0] == again[0] and isinstance(again[0], OrderRouted) and again[0].venue == "aaa"
    assert a.calls.count("create") == 1 and "create" not in b.calls
