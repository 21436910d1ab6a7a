"""``demo``: the whole pipeline on one machine."""

from __future__ import annotations

from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from zvt_pipeline.cli.context import CliContext
from zvt_pipeline.cli.output import console, json_option, report, table

pass_ctx = click.make_pass_decorator(CliContext)


@click.command()
@click.option(
    "--orders",
    default=3000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Order intents to submit.",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--seed", default=7, show_default=True, help="Seed of the order flow and market data.")
@click.option(
    "--rate",
    default=None,
    type=click.FloatRange(1),
    help="Offered load in orders/s (default: as fast as it goes).",
)
@click.option("--keep", is_flag=True, help="Keep the previous demo state instead of starting fresh.")
@json_option
@pass_ctx
def demo(
    ctx: CliContext, orders: int, workers: int, seed: int, rate: float | None, keep: bool, as_json: bool
) -> None:
    """Run the pipeline end to end: market data, funded accounts, workers, a seeded order flow, a report.

    With no REDIS_URL, the demo uses its own embedded Redis under ZVT_STATE_DIR/demo, fresh each run."""
    from zvt_pipeline.demo.runner import DemoConfig, run_demo
    from zvt_pipeline.redis_client import describe

    settings = ctx.settings
    if not settings.redis_url:
        settings = settings.model_copy(update={"state_dir": settings.state_dir / "demo"})
    else:
        settings = settings.model_copy(update={"key_prefix": f"{settings.key_prefix}demo:"})
    from zvt_pipeline.runtime import Runtime

    runtime = Runtime.from_settings(settings)
    config = DemoConfig(orders=orders, workers=workers, seed=seed, rate=rate)
    if as_json:
        result = run_demo(runtime, config, keep=keep)
    else:
        console.print(f"demo: {orders} orders, {workers} worker process(es), {describe(settings)}")
        with Progress(
            TextColumn("orders"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("orders", total=orders, rate="")

            def progress(done: int, total: int) -> None:
                elapsed = bar.tasks[0].elapsed or 0
                bar.update(task, completed=done, rate=f"{done / elapsed:,.0f} orders/s" if elapsed else "")

            result = run_demo(runtime, config, progress=progress, keep=keep)
    report(as_json, result, render)
    if result["throughput"]["unfinished"]:
        raise click.ClickException(f"{result['throughput']['unfinished']} workflows did not finish in time")


def render(result: dict[str, Any]) -> None:
    runs = result["orders"]
    table("orders by outcome", ["outcome", "orders"], sorted(runs["outcomes"].items()), right=["orders"])
    if runs["rejected_by_rule"]:
        table(
            "rejected by risk rule",
            ["rule", "orders"],
            sorted(runs["rejected_by_rule"].items()),
            right=["orders"],
        )
    rows = []
    for account, acc in result["accounts"].items():
        for pos in acc["positions"]:
            rows.append(
                (account, pos["symbol"], pos["amount"], _q(pos["avg_entry_price"]), _q(pos["realized_pnl"]))
            )
    table(
        "positions",
        ["account", "symbol", "amount", "avg entry", "realized pnl"],
        rows,
        right=["amount", "avg entry", "realized pnl"],
    )
    table(
        "accounts",
        ["account", "equity", "realized pnl", "unrealized pnl", "fees"],
        [
            (
                a,
                _q(v["equity"]),
                _q(v["realized_pnl"]),
                _q(v["unrealized_pnl"]),
                ", ".join(f"{_q(x)} {c}" for c, x in v["fees"].items()),
            )
            for a, v in result["accounts"].items()
        ],
        right=["equity", "realized pnl", "unrealized pnl"],
    )
    t, lat = result["throughput"], runs["latency_requested_to_completed"]
    console.print(
        f"throughput: {t['orders']} orders in {t['elapsed_s']} s = {t['orders_per_s']} orders/s "
        f"({t['workers']} workers); late maker fills: {result['late_fills']}"
    )
    console.print(
        f"latency requested -> completed: p50 {lat['p50_ms']} ms, p90 {lat['p90_ms']} ms, p99 {lat['p99_ms']} ms, "
        f"max {lat['max_ms']} ms"
    )


def _q(value: Any) -> str:
    from decimal import Decimal

    d = Decimal(str(value))
    return f"{d.quantize(Decimal('0.01')):,}" if abs(d) >= 1 else f"{d.normalize():f}"


@click.command()
@click.option(
    "--orders",
    default=5000,
    show_default=True,
    type=click.IntRange(100),
    help="Orders for the saturation run.",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option(
    "--rate",
    default=1000.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Offered load for the latency run.",
)
@click.option(
    "--seconds", default=5.0, show_default=True, type=click.FloatRange(0.5), help="Length of the latency run."
)
@click.option(
    "--parts", default="saturation,ceiling,latency,profile", show_default=True, help="Which measurements."
)
@pass_ctx
def bench(ctx: CliContext, orders: int, workers: int, rate: float, seconds: float, parts: str) -> None:
    """Measure throughput, latency and the transport ceiling on this machine; print JSON.

    Uses its own key prefix (bench:) or, with no REDIS_URL, its own embedded Redis; state is removed after."""
    from zvt_pipeline.bench import BenchConfig, run
    from zvt_pipeline.cli.output import print_json

    settings = ctx.settings
    if settings.redis_url:
        settings = settings.model_copy(update={"key_prefix": f"{settings.key_prefix}bench:"})
    else:
        settings = settings.model_copy(update={"state_dir": settings.state_dir / "bench"})
    config = BenchConfig(orders=orders, workers=workers, rate=rate, latency_seconds=seconds)
    wanted = tuple(p.strip() for p in parts.split(",") if p.strip())
    print_json(run(settings, config, wanted))


COMMANDS = [demo, bench]
