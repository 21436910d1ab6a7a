"""What happens after a step: hand on to the next step, or finish the workflow. Pure.

The order of steps is the same for every invoker (DESIGN.md section 1)::

    order.requested -> risk -> order.validated -> execute -> order.executed* -> portfolio -> completed
                            \\-> order.rejected: completed (rejected)
                                                \\-> no fills: completed (open / canceled / failed / unknown)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import (
    OrderCanceled,
    OrderExecuted,
    OrderFailed,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
    OrderValidated,
    Outcome,
    WorkflowCompleted,
)

NEXT_STEP = {
    "order.requested": "risk",
    "order.validated": "execute",
    "order.routed": "execute",
    "order.executed": "portfolio",
}


@dataclass(frozen=True)
class Plan:
    next_step: str | None = None
    triggers: tuple[Envelope, ...] = ()
    outcome: Outcome | None = None
    """Set when the workflow is finished."""
    summary: dict[str, str] = field(default_factory=dict)

    def completion(self, run_id: str) -> WorkflowCompleted | None:
        if self.outcome is None:
            return None
        return WorkflowCompleted(run_id=run_id, outcome=self.outcome, summary=dict(self.summary))


def fills_outcome(fills: Sequence[OrderExecuted]) -> tuple[Outcome, dict[str, str]]:
    last = fills[-1]
    filled = (
        last.filled_total if last.filled_total is not None else sum((f.amount for f in fills), Decimal(0))
    )
    full = last.order_amount is None or filled >= last.order_amount
    notional = sum((f.amount * f.price for f in fills), Decimal(0))
    summary = {"filled": str(filled), "fills": str(len(fills)), "notional": str(notional)}
    if filled:
        summary["avg_price"] = str((notional / filled).quantize(Decimal("0.00000001")))
    return ("filled" if full else "partially_filled"), summary


def plan_next(step: str, outputs: Sequence[Envelope]) -> Plan:
    """Decide the hand-on from a step's output events."""
    payloads = [e.payload for e in outputs]
    if step == "risk":
        validated = [e for e in outputs if isinstance(e.payload, OrderValidated)]
        if validated:
            return Plan("execute", (validated[-1],))
        rejected = next((p for p in payloads if isinstance(p, OrderRejected)), None)
        summary = {"rule": rejected.rule, "reason": rejected.reason} if rejected else {}
        return Plan(outcome="rejected", summary=summary)
    if step == "execute":
        fills = [e for e in outputs if isinstance(e.payload, OrderExecuted)]
        if fills:
            return Plan("portfolio", tuple(fills))
        for p in reversed(payloads):
            if isinstance(p, OrderFailed):
                return Plan(outcome="failed", summary={"error": p.error_code, "reason": p.reason})
            if isinstance(p, OrderUnknown):
                return Plan(outcome="unknown", summary={"reason": p.reason})
            if isinstance(p, OrderCanceled):
                return Plan(outcome="canceled", summary={"reason": p.reason})
            if isinstance(p, OrderSubmitted):
                return Plan(outcome="open", summary={"venue": p.venue, "venue_order_id": p.venue_order_id})
        return Plan(outcome="failed", summary={"reason": "execute produced no order outcome"})
    if step == "portfolio":
        return Plan(outcome=None)
    raise ValueError(f"unknown step {step!r}")


def portfolio_completion(triggers: Sequence[Envelope]) -> Plan:
    """After the fills of one execution are applied, the workflow is finished."""
    fills = [t.payload for t in triggers if isinstance(t.payload, OrderExecuted)]
    if not fills:
        return Plan()
    outcome, summary = fills_outcome(fills)
    return Plan(outcome=outcome, summary=summary)
