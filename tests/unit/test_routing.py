"""Hand-on decisions after each step (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import (
    OrderExecuted,
    OrderFailed,
    OrderRejected,
    OrderRouted,
    OrderSubmitted,
    OrderValidated,
    Payload,
    Reservation,
)
from zvt_pipeline.messages.types import Fee
from zvt_pipeline.workflows.routing import plan_next, portfolio_completion

ORDER = OrderSpec(
    client_order_id="c1",
    account_id="A",
    symbol="BTC/USDT",
    side="buy",
    type="limit",  # type: ignore[arg-type]
    amount=Decimal("0.02"),
    price=Decimal("60000"),
)


def env(p: Payload) -> Envelope:
    return Envelope.new(p, stream_id="order-c1", correlation_id="run-1")


def fill(n: int, amount: str, total: str) -> Envelope:
    return env(
        OrderExecuted(
            trade_id=f"t{n}",
            client_order_id="c1",
            account_id="A",
            venue="paper",
            symbol="BTC/USDT",
            side="buy",
            amount=Decimal(amount),
            price=Decimal("60000"),  # type: ignore[arg-type]
            fee=Fee(cost=Decimal("0.06"), currency="USDT"),
            timestamp=datetime.now(UTC),
            order_amount=Decimal("0.02"),
            filled_total=Decimal(total),
        )
    )


def test_validated_goes_to_execute() -> None:
    v = env(OrderValidated(order=ORDER, reservation=Reservation(currency="USDT", amount=Decimal("1201.2"))))
    plan = plan_next("risk", [v])
    assert plan.next_step == "execute" and plan.triggers == (v,) and plan.outcome is None


def test_rejection_completes_with_the_rule() -> None:
    r = env(
        OrderRejected(
            client_order_id="c1", account_id="A", symbol="BTC/USDT", rule="max_notional", reason="too big"
        )
    )
    plan = plan_next("risk", [r])
    assert plan.next_step is None and plan.outcome == "rejected" and plan.summary["rule"] == "max_notional"


def test_fills_go_to_portfolio_and_complete_there() -> None:
    routed = env(
        OrderRouted(
            order=ORDER,
            reservation=Reservation(currency="USDT", amount=Decimal(1)),
            venue="paper",
            reason="only venue",
        )
    )
    f1, f2 = fill(1, "0.01", "0.01"), fill(2, "0.01", "0.02")
    plan = plan_next("execute", [routed, f1, f2])
    assert plan.next_step == "portfolio" and plan.triggers == (f1, f2)
    done = portfolio_completion([f1, f2])
    assert (
        done.outcome == "filled"
        and done.summary["filled"] == "0.02"
        and done.summary["avg_price"] == "60000.00000000"
    )
    assert portfolio_completion([f1]).outcome == "partially_filled"


def test_no_fill_outcomes() -> None:
    submitted = env(OrderSubmitted(order=ORDER, venue="paper", venue_order_id="v1"))
    assert plan_next("execute", [submitted]).outcome == "open"
    failed = env(
        OrderFailed(client_order_id="c1", account_id="A", error_code="no_route", reason="no venue lists X")
    )
    assert plan_next("execute", [failed]).outcome == "failed"
