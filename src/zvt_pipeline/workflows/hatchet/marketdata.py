"""``marketdata.ingest`` (cron): one scheduled pull of the market data source into Redis (marks, books,
``price.updated`` / ``orderbook.updated`` streams) through the same ``MarketDataIngester`` the streaming
ingester uses. For venues with a streaming feed, run ``zvt-pipeline`` market data instead; this is the
scheduled pull for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from zvt_pipeline.marketdata.ingest import MarketDataIngester
from zvt_pipeline.workflows.hatchet.deps import HatchetDeps, deps_of
from zvt_pipeline.workflows.hatchet.models import MarketDataOutput, ScheduledInput

if TYPE_CHECKING:
    from hatchet_sdk import Hatchet
    from hatchet_sdk.runnables.task import Task
    from hatchet_sdk.runnables.workflow import Workflow

    from zvt_pipeline.workflows.hatchet.config import HatchetConfig

NAME = "marketdata.ingest"


def source_of(deps: HatchetDeps) -> Any:
    if deps.marketdata is None:
        from zvt_pipeline.marketdata.ccxt_source import CcxtMarketData

        deps.marketdata = CcxtMarketData()
    return deps.marketdata


def ingest_body(deps: HatchetDeps, inp: ScheduledInput) -> MarketDataOutput:
    rt = deps.runtime
    payloads = list(source_of(deps).poll())
    if inp.symbols:
        payloads = [p for p in payloads if getattr(p, "symbol", None) in inp.symbols]
    count = MarketDataIngester(rt.client, rt.keys).ingest(payloads)
    symbols = sorted({str(getattr(p, "symbol", "")) for p in payloads} - {""})
    return MarketDataOutput(ingested=count, symbols=symbols)


@dataclass(frozen=True)
class MarketDataWorkflow:
    workflow: Workflow[ScheduledInput]
    ingest: Task[ScheduledInput, MarketDataOutput]


def define(hatchet: Hatchet, config: HatchetConfig) -> MarketDataWorkflow:
    from zvt_pipeline.workflows.hatchet.place_order import guarded

    wf = hatchet.workflow(
        name=NAME, input_validator=ScheduledInput, on_crons=[config.marketdata_cron], concurrency=1
    )

    @wf.task(execution_timeout=timedelta(seconds=50), retries=1)
    def ingest(input: ScheduledInput, ctx: Any) -> MarketDataOutput:
        return guarded(lambda: ingest_body(deps_of(ctx), input))

    return MarketDataWorkflow(wf, ingest)
