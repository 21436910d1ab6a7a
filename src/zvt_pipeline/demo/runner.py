"""The demo (and the benchmark's harness): fresh state, market data, funded accounts, worker processes,
a seeded order flow, and a report of what happened."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from zvt_pipeline.cli.commands_ops import start_workers
from zvt_pipeline.demo.scenario import ScenarioConfig, generate
from zvt_pipeline.demo.stats import read_runs, summarize_runs
from zvt_pipeline.execution.venues.paper import PaperVenue
from zvt_pipeline.marketdata.ingest import MarketDataIngester
from zvt_pipeline.marketdata.synthetic import SyntheticMarketData
from zvt_pipeline.messages.commands import SubmitOrder
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.types import split_symbol
from zvt_pipeline.portfolio.store import PortfolioStore
from zvt_pipeline.portfolio.valuation import value_account
from zvt_pipeline.risk.config import RiskConfig, RiskLimits, save_risk_config
from zvt_pipeline.runtime import Runtime
from zvt_pipeline.workflows.resting_fills import RestingFillRouter
from zvt_pipeline.workflows.streams_runner import WorkerConfig
from zvt_pipeline.workflows.submit import Workflows

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DemoConfig:
    orders: int = 3000
    workers: int = 2
    seed: int = 7
    accounts: tuple[str, ...] = ("alice", "bob", "carol")
    cash_usdt: Decimal = Decimal(5_000_000)
    market_data_interval_s: float = 0.05
    submit_chunk: int = 250
    rate: float | None = None
    """Offered load in orders/s; None = as fast as the pipeline takes them."""
    timeout_s: float = 120.0
    worker: WorkerConfig = field(default_factory=WorkerConfig)


def reset(runtime: Runtime) -> int:
    """Delete every key under this deployment's prefix (the demo's fresh start)."""
    deleted = 0
    for key in runtime.client.scan_iter(match=f"{runtime.keys.prefix}*", count=5000):
        deleted += runtime.client.delete(key)
    return int(deleted)


def demo_risk_config() -> RiskConfig:
    """Desk-style limits: the demo's bad intents hit them by name; ordinary flow passes."""
    return RiskConfig(
        defaults=RiskLimits(
            max_order_notional=Decimal(250_000),
            max_position_notional=Decimal(1_500_000),
            max_gross_exposure=Decimal(4_000_000),
            # The demo submits thousands of orders in seconds from three accounts.
            max_orders_per_window=20_000,
            price_band_pct=Decimal("0.05"),
        )
    )


def fund(runtime: Runtime, config: DemoConfig) -> None:
    portfolio = PortfolioStore(runtime.client, runtime.keys)
    for account in config.accounts:
        # Holdings are positions, not cash (see risk/engine.py): accounts start with quote cash only.
        deposits = [portfolio.deposit(account, "USDT", config.cash_usdt)]
        stream = f"account-{account}"
        runtime.store.append(
            stream, [Envelope.new(d, stream_id=stream, correlation_id="demo-funding") for d in deposits]
        )


class MarketDataThread(threading.Thread):
    """Synthetic market data into Redis, matching resting paper orders after each book move."""

    def __init__(self, runtime: Runtime, config: DemoConfig) -> None:
        super().__init__(name="marketdata", daemon=True)
        from zvt_pipeline.marketdata.config import SyntheticConfig

        # Deeper levels than the default so that a burst of market orders rarely empties a book.
        md_config = SyntheticConfig(seed=config.seed + 1, level_notional=Decimal(40_000))
        self.source = SyntheticMarketData(runtime.markets, md_config)
        venue = PaperVenue(runtime.client, runtime.keys, markets=runtime.markets, seed=config.seed)
        self.router = RestingFillRouter(venue, runtime.bus, runtime.store)
        self.ingester = MarketDataIngester(runtime.client, runtime.keys, on_book=self.router.on_book)
        self.interval = config.market_data_interval_s
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def seed(self) -> None:
        self.ingester.ingest(self.source.step())

    def run(self) -> None:
        try:
            while not self.stop_event.wait(self.interval):
                self.ingester.ingest(self.source.step())
        except BaseException as exc:  # reported by the demo, never silently lost
            self.error = exc


def marks(runtime: Runtime) -> dict[str, Decimal]:
    out = {}
    for field_, value in runtime.client.hgetall(runtime.keys.marks).items():
        _, symbol = field_.decode().split("|", 1)
        out[symbol] = Decimal(value.decode())
    return out


def prepare(
    runtime: Runtime, config: DemoConfig, md: MarketDataThread | None = None, keep: bool = False
) -> list[SubmitOrder]:
    """Fresh state (unless ``keep``): stream groups, risk limits, one book per market, funded accounts;
    returns the seeded order flow. The demo, the benchmark and the multi-process tests start from here."""
    if not keep:
        reset(runtime)
    runtime.bus.ensure_groups()
    save_risk_config(runtime.client, runtime.keys, demo_risk_config())
    (md or MarketDataThread(runtime, config)).seed()
    fund(runtime, config)
    scenario = ScenarioConfig(accounts=config.accounts, seed=config.seed)
    return list(generate(marks(runtime), runtime.markets, config.orders, scenario))


def run_demo(
    runtime: Runtime, config: DemoConfig, progress: Progress | None = None, keep: bool = False
) -> dict[str, Any]:
    md = MarketDataThread(runtime, config)
    orders = prepare(runtime, config, md, keep=keep)
    workflows = Workflows(runtime.bus, runtime.store)
    procs, stop = start_workers(runtime.settings, config.worker, config.workers)
    md.start()
    started = time.monotonic()
    run_ids: list[str] = []
    try:
        for i in range(0, len(orders), config.submit_chunk):
            chunk = orders[i : i + config.submit_chunk]
            run_ids += [s.run_id for s in workflows.submit_many(chunk)]
            if config.rate:
                time.sleep(max(0.0, started + len(run_ids) / config.rate - time.monotonic()))
            if progress:
                progress(len(run_ids) - _open_count(runtime), len(orders))
        submitted_s = time.monotonic() - started
        deadline = started + config.timeout_s
        while _open_count(runtime) and time.monotonic() < deadline:
            if progress:
                progress(len(run_ids) - _open_count(runtime), len(orders))
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        if progress:
            progress(len(run_ids) - _open_count(runtime), len(orders))
    finally:
        stop.set()
        md.stop_event.set()
        for p in procs:
            p.join(timeout=10)
        md.join(timeout=5)
    runs = summarize_runs(read_runs(runtime.client, runtime.keys, run_ids))
    return {
        "orders": runs,
        "throughput": {
            "orders": len(run_ids),
            "unfinished": _open_count(runtime),
            "elapsed_s": round(elapsed, 3),
            "submit_s": round(submitted_s, 3),
            "orders_per_s": round(len(run_ids) / elapsed, 1) if elapsed else 0.0,
            "workers": config.workers,
        },
        "late_fills": md.router.fills,
        "accounts": account_report(runtime),
        "market_data_error": repr(md.error) if md.error else None,
    }


def _open_count(runtime: Runtime) -> int:
    return int(runtime.client.zcard(runtime.keys.workflows_open))


def account_report(runtime: Runtime) -> dict[str, Any]:
    store = PortfolioStore(runtime.client, runtime.keys)
    the_marks = store.marks()
    out: dict[str, Any] = {}
    for account, state in sorted(store.snapshot().items()):
        value = value_account(state, the_marks)
        out[account] = {
            "equity": value.equity,
            "cash": dict(state.balances),
            "realized_pnl": value.realized_pnl,
            "unrealized_pnl": value.unrealized_pnl,
            "fees": _fees(state),
            "positions": [
                {
                    "venue": key[0],
                    "symbol": key[1],
                    "amount": pos.amount,
                    "avg_entry_price": pos.avg_entry_price,
                    "realized_pnl": pos.realized_pnl,
                }
                for key, pos in sorted(state.positions.items())
                if pos.amount or pos.realized_pnl
            ],
        }
    return out


def _fees(state: Any) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for pos in state.positions.values():
        for cur, amt in pos.fees_paid.items():
            total[cur] = total.get(cur, Decimal(0)) + amt
    return total


__all__ = ["DemoConfig", "run_demo", "split_symbol"]
