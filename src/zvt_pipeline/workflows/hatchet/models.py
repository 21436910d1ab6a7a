"""Typed inputs and outputs of the Hatchet tasks (JSON through the engine, pydantic on both ends)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import Outcome
from zvt_pipeline.messages.types import AccountId, Symbol, VenueId

RUN_ID_NAMESPACE = uuid.UUID("0b6f6c55-3f0e-5d3e-8f5a-6a1f6f1d2c7e")


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlaceOrderInput(Model):
    """Input of ``trading.place_order`` (a run call, or the payload of the ``order:requested`` event)."""

    order: OrderSpec
    run_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """The workflow run id (``correlation_id`` of every event). ``None``: derived from the client order id,
    so every task of the run, and every redelivery of the same event, agrees on it."""

    @property
    def workflow_run_id(self) -> str:
        if self.run_id:
            return self.run_id
        return uuid.uuid5(RUN_ID_NAMESPACE, self.order.client_order_id).hex


class StepOutput(Model):
    """What one DAG task did: the events it appended and the hand-on to the next task."""

    run_id: str
    step: str
    events: list[Envelope] = Field(default_factory=list)
    next_step: str | None = None
    triggers: list[Envelope] = Field(default_factory=list)
    """The next task's triggers (``order.validated``, ``order.routed``, the fills)."""
    outcome: Outcome | None = None
    """Set when the run finished at this step (later tasks skip)."""
    summary: dict[str, str] = Field(default_factory=dict)
    noop: bool = False
    """True when an earlier task already finished the run, so this one did nothing. (Not ``skipped``: the
    engine reserves that key in task outputs for tasks it skipped itself.)"""

    @property
    def finished(self) -> bool:
        return self.outcome is not None or self.next_step is None

    @property
    def event_types(self) -> list[str]:
        return [e.type for e in self.events]


class RebalanceInput(Model):
    """Input of ``portfolio.rebalance``: target weights (fractions of equity) for one account and venue."""

    account_id: AccountId
    targets: dict[Symbol, Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]]
    venue: VenueId = "paper"
    quote_currency: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}$")] = "USDT"
    run_id: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default_factory=lambda: uuid.uuid4().hex
    )


class PlannedOrderModel(Model):
    order: OrderSpec
    run_id: str
    phase: Literal["sell", "buy"]


class RebalancePlanOutput(Model):
    run_id: str
    equity: Decimal
    orders: list[PlannedOrderModel] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    """Why a symbol got no order (below min notional, no mark, capped by cash)."""


class ChildResult(Model):
    run_id: str
    client_order_id: str
    outcome: str
    """The child's workflow outcome (``filled``, ``rejected`` ...), or ``canceled`` by compensation."""


class RebalanceOrdersOutput(Model):
    run_id: str
    children: list[ChildResult] = Field(default_factory=list)


class RebalanceResult(Model):
    run_id: str
    status: Literal["completed", "partial", "failed"]
    targets: dict[str, Decimal]
    achieved: dict[str, Decimal]
    orders: list[str] = Field(default_factory=list)


class ScheduledInput(Model):
    """Input of the scheduled workflows: optionally narrowed to some accounts / symbols."""

    accounts: list[AccountId] | None = None
    symbols: list[Symbol] | None = None


class RiskMonitorOutput(Model):
    checked: list[str] = Field(default_factory=list)
    breaches: list[dict[str, str]] = Field(default_factory=list)


class ReconcileFinding(Model):
    account_id: AccountId
    venue: VenueId
    client_order_id: str
    kind: Literal["missing_fills", "status", "unknown_order", "extra_fills"]
    detail: str
    missing_trade_ids: list[str] = Field(default_factory=list)


class ReconcileReport(Model):
    reconcile_id: str
    checked_orders: int = 0
    findings: list[ReconcileFinding] = Field(default_factory=list)

    @property
    def mismatch(self) -> bool:
        return bool(self.findings)


class ReconcileApproval(Model):
    """Payload of the operator's ``reconcile:approved`` event."""

    reconcile_id: str
    approved: bool = True
    operator: str = "operator"
    note: str = ""


class ReconcileOutput(Model):
    reconcile_id: str
    status: Literal["clean", "corrected", "declined"]
    booked: list[str] = Field(default_factory=list)
    """Trade ids booked as ``order.executed`` after approval (fills the venue reports)."""


class MarketDataOutput(Model):
    ingested: int = 0
    symbols: list[str] = Field(default_factory=list)
