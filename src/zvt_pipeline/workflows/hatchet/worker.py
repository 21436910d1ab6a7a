"""All Hatchet workflows, and the worker that runs them (``zvt-pipeline hatchet worker``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zvt_pipeline.workflows.hatchet import marketdata, place_order, rebalance, reconcile, risk_monitor
from zvt_pipeline.workflows.hatchet.config import HatchetConfig
from zvt_pipeline.workflows.hatchet.deps import HatchetDeps

if TYPE_CHECKING:
    from hatchet_sdk import Hatchet

    from zvt_pipeline.config import Settings


@dataclass(frozen=True)
class HatchetWorkflows:
    place_order: place_order.PlaceOrderWorkflow
    rebalance: rebalance.RebalanceWorkflow
    risk_monitor: risk_monitor.RiskMonitorWorkflow
    reconcile: reconcile.ReconcileWorkflow
    marketdata: marketdata.MarketDataWorkflow

    @property
    def all(self) -> list[Any]:
        return [
            self.place_order.workflow,
            self.rebalance.workflow,
            self.risk_monitor.workflow,
            self.reconcile.workflow,
            self.marketdata.workflow,
        ]


def build_workflows(hatchet: Hatchet, config: HatchetConfig | None = None) -> HatchetWorkflows:
    config = config or HatchetConfig()
    po = place_order.define(hatchet, config)
    return HatchetWorkflows(
        place_order=po,
        rebalance=rebalance.define(hatchet, config, po),
        risk_monitor=risk_monitor.define(hatchet, config),
        reconcile=reconcile.define(hatchet, config),
        marketdata=marketdata.define(hatchet, config),
    )


def lifespan_for(make_deps: Callable[[], HatchetDeps]) -> Callable[[], AsyncGenerator[HatchetDeps, None]]:
    """The worker's lifespan: build the dependencies once when the worker starts, close them at exit."""

    async def lifespan() -> AsyncGenerator[HatchetDeps, None]:
        deps = make_deps()
        try:
            yield deps
        finally:
            deps.runtime.store.close()

    return lifespan


def create_worker(
    hatchet: Hatchet, settings: Settings, config: HatchetConfig | None = None, slots: int | None = None
) -> Any:
    """A worker with every workflow registered; ``worker.start()`` connects to the engine and blocks."""
    from zvt_pipeline.runtime import Runtime

    config = config or HatchetConfig()
    workflows = build_workflows(hatchet, config)

    def make_deps() -> HatchetDeps:
        return HatchetDeps.from_runtime(Runtime.from_settings(settings), config)

    return hatchet.worker(
        config.worker_name,
        slots=slots or config.slots,
        workflows=workflows.all,
        lifespan=lifespan_for(make_deps),
    )
