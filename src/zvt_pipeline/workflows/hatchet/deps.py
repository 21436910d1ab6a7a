"""What the Hatchet tasks need, built once per worker (the worker's ``lifespan``) and read from ``ctx``.

Tests pass the same object to ``task.mock_run(..., lifespan=deps)``, so a task runs the same code under
the engine and offline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from zvt_pipeline.invoke import Invoker, create_invoker
from zvt_pipeline.messages.types import utcnow
from zvt_pipeline.workflows.hatchet.config import HatchetConfig

if TYPE_CHECKING:
    from zvt_pipeline.runtime import Runtime
    from zvt_pipeline.workflows.hatchet.models import ReconcileApproval
    from zvt_pipeline.workflows.hatchet.rebalance import ChildRunner

ApprovalWaiter = Callable[[Any, str, float], Awaitable["ReconcileApproval | None"]]
"""``(ctx, reconcile_id, timeout_seconds) -> approval``, or ``None`` when none came in time."""


@dataclass
class HatchetDeps:
    runtime: Runtime
    invoker: Invoker
    config: HatchetConfig = field(default_factory=HatchetConfig)
    children: ChildRunner | None = None
    """How ``portfolio.rebalance`` runs its child orders; ``None``: as Hatchet child runs."""
    wait_for_approval: ApprovalWaiter | None = None
    """How ``trading.reconcile`` waits for the operator; ``None``: a durable wait on ``reconcile:approved``."""
    venue_map: Mapping[str, Any] | None = None
    """Venues ``trading.reconcile`` asks; ``None``: the execute step's venues."""
    marketdata: Any = None
    """``MarketDataSource`` polled by ``marketdata.ingest``; ``None``: a ccxt source with default config."""
    clock: Callable[[], datetime] = utcnow

    def venues(self) -> Mapping[str, Any]:
        if self.venue_map is None:
            # The execute step owns the configured venues (paper, ccxt ...): reconcile asks the same ones.
            self.venue_map = dict(getattr(self.runtime.step("execute"), "_venues", {}))
        return self.venue_map

    @classmethod
    def from_runtime(
        cls, runtime: Runtime, config: HatchetConfig | None = None, **kwargs: Any
    ) -> HatchetDeps:
        return cls(
            runtime=runtime, invoker=create_invoker(runtime), config=config or HatchetConfig(), **kwargs
        )


def deps_of(ctx: Any) -> HatchetDeps:
    deps = ctx.lifespan
    if not isinstance(deps, HatchetDeps):
        raise RuntimeError("the Hatchet worker was started without zvt-pipeline's lifespan (see worker.py)")
    return deps
