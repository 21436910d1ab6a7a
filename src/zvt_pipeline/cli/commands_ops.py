"""Operations: workers, trading state, dead letters."""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from typing import Any

import click

from zvt_pipeline.bus.streams import STEPS
from zvt_pipeline.cli.context import CliContext
from zvt_pipeline.cli.output import console, json_option, report, table
from zvt_pipeline.config import Settings
from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import TradingStateChanged
from zvt_pipeline.messages.types import TradingState
from zvt_pipeline.workflows.streams_runner import WorkerConfig

pass_ctx = click.make_pass_decorator(CliContext)


def parse_steps(text: str) -> tuple[str, ...]:
    steps = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise InvalidMessage(
            f"steps: unknown step(s) {unknown or text!r}; choose from {', '.join(STEPS)}", field="steps"
        )
    return steps


def shared_settings(settings: Settings) -> Settings:
    """Settings for child processes: with the embedded Redis, point them at the parent's server socket."""
    if settings.redis_url:
        return settings
    from zvt_pipeline.redis_client import _embedded_socket

    return settings.model_copy(update={"redis_url": f"unix://{_embedded_socket(settings.state_dir)}"})


def run_worker_process(settings: Settings, config: WorkerConfig, stop: Any = None) -> None:
    """Entry point of one worker process (also used by the demo and the benchmark)."""
    from zvt_pipeline.runtime import Runtime
    from zvt_pipeline.workflows.streams_runner import StepWorker
    from zvt_pipeline.workflows.submit import Workflows

    runtime = Runtime.from_settings(settings)
    worker = StepWorker(runtime.bus, runtime.store, runtime.step, config)
    Workflows(runtime.bus, runtime.store).resume_stale(config.resume_after_s)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    if stop is not None:

        def stop_when_told() -> None:
            stop.wait()
            worker.stop()

        threading.Thread(target=stop_when_told, daemon=True).start()
    worker.run()


def start_workers(settings: Settings, config: WorkerConfig, processes: int) -> tuple[list[Any], Any]:
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    child_settings = shared_settings(settings)
    procs = [
        ctx.Process(target=run_worker_process, args=(child_settings, config, stop), daemon=True)
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    return procs, stop


@click.command()
@click.option("--steps", default=",".join(STEPS), show_default=True, help="Comma-separated steps to run.")
@click.option(
    "--processes", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes."
)
@click.option(
    "--batch", default=200, show_default=True, type=click.IntRange(1, 10_000), help="Entries per read."
)
@click.option(
    "--idle-ms",
    default=5000,
    show_default=True,
    type=click.IntRange(100),
    help="Claim entries pending longer than this.",
)
@click.option(
    "--max-deliveries",
    default=5,
    show_default=True,
    type=click.IntRange(1),
    help="Dead-letter after this many deliveries.",
)
@pass_ctx
def worker(
    ctx: CliContext, steps: str, processes: int, batch: int, idle_ms: int, max_deliveries: int
) -> None:
    """Run step workers until interrupted. Start more, on any node, against the same Redis to scale out."""
    config = WorkerConfig(
        steps=parse_steps(steps), batch=batch, idle_ms=idle_ms, max_deliveries=max_deliveries
    )
    from zvt_pipeline.redis_client import describe

    console.print(
        f"workers: {processes} process(es), steps {','.join(config.steps)}, redis {describe(ctx.settings)}"
    )
    if processes == 1:
        run_worker_process(ctx.settings, config)
        return
    procs, stop = start_workers(ctx.settings, config, processes)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        stop.set()
        for p in procs:
            p.join(timeout=5)


def change_trading_state(
    ctx: CliContext, state: TradingState, account_id: str | None, reason: str, as_json: bool
) -> None:
    rt = ctx.runtime
    payload = TradingStateChanged(state=state, account_id=account_id, reason=reason)
    rt.client.hset(rt.keys.trading_state, account_id or "*", state.value)
    stream = f"account-{account_id}" if account_id else "trading-state"
    rt.store.append(stream, [Envelope.new(payload, stream_id=stream, correlation_id="operator")])
    scope = f"account {account_id}" if account_id else "all accounts"
    report(
        as_json,
        payload.model_dump(mode="json"),
        lambda _: console.print(f"trading {state.value} for {scope}"),
    )


def _state_command(state: TradingState, doc: str) -> click.Command:
    @click.command(name={"HALTED": "halt", "REDUCING": "reduce"}[state.value], help=doc)
    @click.option("--account", "account_id", default=None, help="Only this account (default: all).")
    @click.option("--reason", default="", help="Why (recorded in the event).")
    @json_option
    @pass_ctx
    def command(ctx: CliContext, account_id: str | None, reason: str, as_json: bool) -> None:
        change_trading_state(ctx, state, account_id, reason, as_json)

    return command


halt = _state_command(TradingState.HALTED, "Deny every new order (globally or for --account).")
reduce = _state_command(TradingState.REDUCING, "Allow only orders that shrink a position.")


@click.group()
def dlq() -> None:
    """Dead letters: entries a step could not process."""


@dlq.command("list")
@click.option("--step", "steps", default=",".join(STEPS), show_default=True)
@json_option
@pass_ctx
def dlq_list(ctx: CliContext, steps: str, as_json: bool) -> None:
    """List dead letters per step."""
    items = [d for s in parse_steps(steps) for d in ctx.runtime.bus.dlq_list(s)]
    for d in items:
        d.pop("detail")

    report(
        as_json,
        items,
        lambda _: table(
            "dead letters",
            ["id", "step", "run_id", "error", "deliveries", "at"],
            [(d["id"], d["step"], d["run_id"], d["error"], d["deliveries"], d["at"]) for d in items],
        ),
    )


@dlq.command("show")
@click.argument("entry_id")
@click.option("--step", "steps", default=",".join(STEPS), show_default=True)
@json_option
@pass_ctx
def dlq_show(ctx: CliContext, entry_id: str, steps: str, as_json: bool) -> None:
    """Show one dead letter with its error and traceback."""
    for s in parse_steps(steps):
        for d in ctx.runtime.bus.dlq_list(s, count=100_000):
            if d["id"] == entry_id:
                report(as_json, d, lambda d: console.print(d, markup=False))
                return
    raise InvalidMessage(f"entry_id: no dead letter {entry_id!r}", field="entry_id")


@dlq.command("redrive")
@click.argument("entry_ids", nargs=-1)
@click.option("--step", "steps", default=",".join(STEPS), show_default=True)
@json_option
@pass_ctx
def dlq_redrive(ctx: CliContext, entry_ids: tuple[str, ...], steps: str, as_json: bool) -> None:
    """Put dead letters back on their step's stream (all, or the given ids)."""
    moved = {s: ctx.runtime.bus.dlq_redrive(s, list(entry_ids) or None) for s in parse_steps(steps)}
    report(as_json, moved, lambda m: console.print(", ".join(f"{s}: {n} redriven" for s, n in m.items())))


@click.command()
@click.option(
    "--synthetic",
    "source",
    flag_value="synthetic",
    default=True,
    help="Seeded random walk (default, offline).",
)
@click.option("--exchange", "exchange_id", default=None, help="Poll a ccxt exchange instead, e.g. binance.")
@click.option("--symbols", default="BTC/USDT,ETH/USDT,SOL/USDT", show_default=True)
@click.option(
    "--interval", default=0.1, show_default=True, type=click.FloatRange(0), help="Seconds between polls."
)
@click.option("--duration", default=None, type=click.FloatRange(0), help="Stop after this many seconds.")
@click.option("--count", default=None, type=click.IntRange(1), help="Stop after this many polls.")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic walk.")
@json_option
@pass_ctx
def marketdata(
    ctx: CliContext,
    source: str,
    exchange_id: str | None,
    symbols: str,
    interval: float,
    duration: float | None,
    count: int | None,
    seed: int,
    as_json: bool,
) -> None:
    """Publish price.updated / orderbook.updated / trade.tick, keep marks and books in Redis, and fill resting
    paper orders when the book moves through them."""
    from zvt_pipeline.marketdata.ingest import MarketDataIngester
    from zvt_pipeline.workflows.resting_fills import RestingFillRouter

    rt = ctx.runtime
    wanted = [s.strip() for s in symbols.split(",") if s.strip()]
    if exchange_id:
        from zvt_pipeline.marketdata.ccxt_source import CcxtMarketData
        from zvt_pipeline.marketdata.config import CcxtSourceConfig

        feed: Any = CcxtMarketData(CcxtSourceConfig(exchange_id=exchange_id, symbols=tuple(wanted)))
        on_book = None
    else:
        from zvt_pipeline.execution.venues.paper import PaperVenue
        from zvt_pipeline.marketdata.config import SyntheticConfig
        from zvt_pipeline.marketdata.synthetic import SyntheticMarketData

        unknown = [s for s in wanted if s not in rt.markets]
        if unknown:
            raise InvalidMessage(
                f"symbols: no market for {', '.join(unknown)} (known: {', '.join(rt.markets)})",
                field="symbols",
            )
        feed = SyntheticMarketData({s: rt.markets[s] for s in wanted}, SyntheticConfig(seed=seed))
        paper = PaperVenue(rt.client, rt.keys, markets=rt.markets)
        on_book = RestingFillRouter(paper, rt.bus, rt.store).on_book
    ingester = MarketDataIngester(rt.client, rt.keys, on_book=on_book)
    if not as_json:
        console.print(
            f"market data from {exchange_id or 'synthetic walk'}: {', '.join(wanted)} (Ctrl-C stops)"
        )
    try:
        stats = ingester.run(feed, interval=interval, duration=duration, count=count)
    except KeyboardInterrupt:
        stats = ingester.stats
    report(
        as_json,
        stats.as_dict(),
        lambda d: console.print(
            f"{d.get('books', 0):.0f} books, {d.get('prices', 0):.0f} prices, {d.get('trades', 0):.0f} trades in {d.get('elapsed', 0):.1f} s"
        ),
    )


COMMANDS = [worker, halt, reduce, dlq, marketdata]
