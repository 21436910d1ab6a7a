"""PortfolioStep on a real Redis: position.updated out, duplicates, reservation releases."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest
import redis

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import OrderExecuted, PositionUpdated, PriceUpdated
from zvt_pipeline.messages.types import Fee, Side
from zvt_pipeline.portfolio.step import PortfolioStep
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.step import order_stream

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class RecordingReleaser:
    """Stands in for risk reservations (another component): records what the step asks it to release."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def release_fill(self, client_order_id: str, filled_amount: D, order_amount: D, trade_id: str) -> None:
        self.calls.append(("fill", client_order_id, filled_amount, order_amount, trade_id))

    def release_all(self, client_order_id: str, reason_key: str) -> None:
        self.calls.append(("all", client_order_id, reason_key))


def executed(
    trade_id: str, amount: str, price: str, *, filled_total: str | None, order_amount: str | None
) -> Envelope:
    payload = OrderExecuted(
        trade_id=trade_id, client_order_id="o1", account_id="a1", venue="paper", symbol="BTC/USDT",
        side=Side.BUY, amount=D(amount), price=D(price), fee=Fee(cost=D("0.1"), currency="USDT"), timestamp=T0,
        order_amount=None if order_amount is None else D(order_amount),
        filled_total=None if filled_total is None else D(filled_total),
    )  # fmt: skip
    return Envelope.new(payload, stream_id=order_stream("o1"), correlation_id="run-1")


@pytest.fixture
def releaser() -> RecordingReleaser:
    return RecordingReleaser()


@pytest.fixture
def step(redis_client: redis.Redis, keys: Keys, releaser: RecordingReleaser) -> PortfolioStep:
    return PortfolioStep(redis_client, keys, releaser)


def test_partial_then_final_fill_updates_position_and_releases(
    step: PortfolioStep, releaser: RecordingReleaser
) -> None:
    first = step.handle(executed("t1", "0.4", "100", filled_total="0.4", order_amount="1"))
    second = step.handle(executed("t2", "0.6", "110", filled_total="1", order_amount="1"))
    assert [e.type for e in first + second] == ["position.updated", "position.updated"]
    p = second[0].payload
    assert isinstance(p, PositionUpdated)
    assert (p.amount, p.avg_entry_price, p.realized_pnl, p.trade_id) == (D(1), D(106), D("-0.2"), "t2")
    assert p.balances == {"USDT": D(-40) - D(66) - D("0.2")}
    assert second[0].stream_id == "order-o1" and second[0].correlation_id == "run-1"
    assert releaser.calls == [
        ("fill", "o1", D("0.4"), D(1), "t1"),
        ("fill", "o1", D("0.6"), D(1), "t2"),
        ("all", "o1", "filled"),
    ]


def test_duplicate_delivery_returns_the_same_event_and_applies_nothing(
    step: PortfolioStep, releaser: RecordingReleaser
) -> None:
    trigger = executed("t1", "0.4", "100", filled_total="0.4", order_amount="1")
    first = step.handle(trigger)
    step.handle(executed("t2", "0.1", "120", filled_total="0.5", order_amount="1"))  # state moves on
    again = step.handle(trigger)
    # same deterministic id and the very same payload as the first time (only occurred_at is new)
    assert [(e.event_id, e.payload) for e in again] == [(e.event_id, e.payload) for e in first]
    assert step.store.positions("a1")[("paper", "BTC/USDT")].amount == D("0.5")
    # releases are repeated: the reservations component is idempotent by trade id
    assert releaser.calls[-1] == ("fill", "o1", D("0.4"), D(1), "t1")


def test_no_release_without_order_amount(step: PortfolioStep, releaser: RecordingReleaser) -> None:
    out = step.run(executed("t1", "1", "100", filled_total=None, order_amount=None))
    assert len(out) == 1
    assert releaser.calls == []


def test_other_event_types_are_refused(step: PortfolioStep) -> None:
    trigger = Envelope.new(
        PriceUpdated(venue="paper", symbol="BTC/USDT", price=D(1)), stream_id="md", correlation_id="r"
    )
    with pytest.raises(InvalidMessage) as err:
        step.handle(trigger)
    assert err.value.field == "type"


def test_default_releaser_gives_the_risk_reservation_back(redis_client: redis.Redis, keys: Keys) -> None:
    from zvt_pipeline.messages.commands import OrderSpec
    from zvt_pipeline.messages.events import Reservation
    from zvt_pipeline.messages.types import OrderType
    from zvt_pipeline.risk.reservations import Reservations

    step = PortfolioStep(redis_client, keys)  # no releaser injected: builds the real one
    step.store.deposit("a1", "USDT", D(1000))
    order = OrderSpec(
        client_order_id="o1", account_id="a1", symbol="BTC/USDT", side=Side.BUY, type=OrderType.LIMIT,
        amount=D(1), price=D(110), venue="paper",
    )  # fmt: skip
    reservations = Reservations(redis_client, keys)
    held = Reservation(currency="USDT", amount=D("110.11"))
    assert reservations.reserve(order, held, "run-1", datetime.now(UTC), None).ok
    step.handle(executed("t1", "0.4", "100", filled_total="0.4", order_amount="1"))
    assert reservations.outstanding("o1") == D("110.11") - D("44.044")
    step.handle(executed("t1", "0.4", "100", filled_total="0.4", order_amount="1"))  # redelivered
    assert reservations.outstanding("o1") == D("66.066")
    step.handle(executed("t2", "0.6", "110", filled_total="1", order_amount="1"))
    assert reservations.outstanding("o1") == 0
    assert reservations.reserved_total("a1", "USDT") == 0
