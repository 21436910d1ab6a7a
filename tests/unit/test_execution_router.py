"""Router choice (price incl. fee, balance, health) and the circuit breaker, with in-memory venues."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal as D

from zvt_pipeline.errors import VenueRetryable
from zvt_pipeline.execution.circuit import CircuitBreakers, CircuitState
from zvt_pipeline.execution.config import CircuitConfig, RouterConfig
from zvt_pipeline.execution.router import Router
from zvt_pipeline.execution.venues.base import BestBidAsk, Venue, VenueOrder
from zvt_pipeline.markets import Market
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import OrderFailed, OrderRouted, OrderValidated, Reservation


def market(taker: str) -> Market:
    return Market(
        symbol="BTC/USDT",
        base="BTC",
        quote="USDT",
        amount_step=D("0.001"),
        price_step=D("0.01"),
        taker=D(taker),
    )


@dataclass
class StubVenue(Venue):
    """An in-memory venue scripted by the test (not a Redis fake: venues are our own interface)."""

    name: str
    bid: D | None = D("99")
    ask: D | None = D("100")
    taker: str = "0.001"
    balances: dict[str, D] | None = None
    quote_error: Exception | None = None
    orders: dict[str, VenueOrder] = field(default_factory=dict)
    create_results: list[object] = field(default_factory=list)
    lookup_results: list[object] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.name

    def markets(self) -> dict[str, Market]:
        return {"BTC/USDT": market(self.taker)}

    def best_bid_ask(self, symbol: str) -> BestBidAsk:
        self.calls.append("quote")
        if self.quote_error:
            raise self.quote_error
        return BestBidAsk(bid=self.bid, ask=self.ask)

    def free_balance(self, account_id: str, currency: str) -> D | None:
        return None if self.balances is None else self.balances.get(currency, D(0))

    def create_order(self, order: OrderSpec) -> VenueOrder:
        self.calls.append("create")
        result = self.create_results.pop(0)
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, VenueOrder)
        self.orders[order.client_order_id] = result
        return result

    def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        self.calls.append("lookup")
        if self.lookup_results:
            result = self.lookup_results.pop(0)
            if isinstance(result, Exception):
                raise result
            return result  # type: ignore[return-value]
        return self.orders.get(client_order_id)

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        return self.orders.get(client_order_id)


def validated(side: str = "buy", amount: str = "1", venue: str | None = None) -> OrderValidated:
    order = OrderSpec(
        client_order_id="c1",
        account_id="a1",
        symbol="BTC/USDT",
        side=side,
        type="market",
        amount=D(amount),
        venue=venue,
    )
    return OrderValidated(order=order, reservation=Reservation(currency="USDT", amount=D("101")))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def router(*venues: StubVenue, clock: Clock | None = None, **cfg: object) -> tuple[Router, CircuitBreakers]:
    breakers = CircuitBreakers(
        CircuitConfig(failure_threshold=2, cooldown_seconds=30), clock=clock or Clock()
    )
    return Router({v.name: v for v in venues}, breakers, RouterConfig(**cfg)), breakers  # type: ignore[arg-type]


def test_buy_goes_to_lowest_ask_after_taker_fee():
    # cheap ask but a 0.5% fee loses to a slightly higher ask with 0.1%
    a = StubVenue("aaa", ask=D("100.00"), taker="0.005")  # 100.5
    b = StubVenue("bbb", ask=D("100.20"), taker="0.001")  # 100.3002
    r, _ = router(a, b)
    out = r.route(validated())
    assert isinstance(out, OrderRouted) and out.venue == "bbb"
    assert [q.effective_price for q in out.candidates] == [D("100.5"), D("100.3002")]
    assert "bbb: best effective ask 100.3002" in out.reason and "aaa 100.5" in out.reason
    assert out.reservation.amount == D("101")


def test_sell_goes_to_highest_bid_after_fee_and_ties_go_to_first_configured():
    a = StubVenue("aaa", bid=D("99"))
    b = StubVenue("bbb", bid=D("99.5"))
    r, _ = router(a, b)
    assert r.route(validated(side="sell")).venue == "bbb"  # type: ignore[union-attr]
    r2, _ = router(StubVenue("x1"), StubVenue("x2"))
    assert r2.route(validated()).venue == "x1"  # type: ignore[union-attr]


def test_balance_excludes_a_venue_and_explains_it():
    rich = StubVenue("rich", ask=D("101"), balances={"USDT": D("1000")})
    poor = StubVenue("poor", ask=D("100"), balances={"USDT": D("50")})
    r, _ = router(poor, rich)
    out = r.route(validated())
    assert isinstance(out, OrderRouted) and out.venue == "rich"
    poor_quote = out.candidates[0]
    assert not poor_quote.balance_ok and "free 50 USDT < needed 100.1 USDT" in poor_quote.note
    # sells need the base currency
    out = r.route(validated(side="sell"))
    assert isinstance(out, OrderFailed) and out.error_code == "no_route"
    assert "BTC" in out.reason


def test_unknown_balance_passes_unless_required():
    v = StubVenue("v", balances=None)
    assert isinstance(router(v)[0].route(validated()), OrderRouted)
    out = router(v, require_known_balance=True)[0].route(validated())
    assert isinstance(out, OrderFailed) and "balance unknown" in out.reason


def test_no_quote_and_preferred_venue():
    empty = StubVenue("empty", ask=None)
    out = router(empty)[0].route(validated())
    assert isinstance(out, OrderFailed) and "no asks in the book" in out.reason
    a, b = StubVenue("aaa", ask=D("90")), StubVenue("bbb", ask=D("100"))
    assert router(a, b)[0].route(validated(venue="bbb")).venue == "bbb"  # type: ignore[union-attr]
    out = router(a, b)[0].route(validated(venue="zzz"))
    assert isinstance(out, OrderFailed) and "zzz: not configured" in out.reason


def test_failing_quotes_open_the_circuit_then_half_open_probe_recovers():
    clock = Clock()
    flaky = StubVenue("flaky", ask=D("90"), quote_error=VenueRetryable("timeout"))
    steady = StubVenue("steady", ask=D("100"))
    r, breakers = router(flaky, steady, clock=clock)
    for _ in range(2):
        assert r.route(validated()).venue == "steady"  # type: ignore[union-attr]
    assert breakers.state("flaky") is CircuitState.OPEN
    flaky.calls.clear()
    out = r.route(validated())
    assert flaky.calls == []  # an open circuit is not even asked for a quote
    assert isinstance(out, OrderRouted) and "flaky passed over (circuit open)" in out.reason
    clock.now += 31
    assert breakers.state("flaky") is CircuitState.HALF_OPEN
    flaky.quote_error = None
    assert r.route(validated()).venue == "flaky"  # the probe gets through
    breakers.record_success("flaky")
    assert breakers.state("flaky") is CircuitState.CLOSED


def test_half_open_allows_one_probe_and_a_failed_probe_reopens():
    clock = Clock()
    b = CircuitBreakers(CircuitConfig(failure_threshold=1, cooldown_seconds=10), clock=clock)
    b.record_failure("v")
    assert not b.allow("v")
    clock.now += 10
    assert b.allow("v") and not b.allow("v")  # one probe only
    b.record_failure("v")
    assert b.state("v") is CircuitState.OPEN
    clock.now += 5
    assert not b.allow("v")


def test_success_resets_the_failure_count():
    b = CircuitBreakers(CircuitConfig(failure_threshold=2), clock=Clock())
    b.record_failure("v")
    b.record_success("v")
    b.record_failure("v")
    assert b.state("v") is CircuitState.CLOSED
