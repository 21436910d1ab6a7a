"""``zvt-pipeline hatchet ...``: run a Hatchet worker with every workflow. hatchet_sdk is imported only here,
inside the commands, so ``zvt-pipeline --help`` stays fast."""

from __future__ import annotations

import click


@click.group()
def hatchet() -> None:
    """Hatchet workflows (needs HATCHET_CLIENT_TOKEN and a Hatchet engine, see docs/hatchet.md)."""


@hatchet.command()
@click.option("--slots", type=int, default=None, help="Concurrent task runs (default ZVT_HATCHET_SLOTS, 50).")
@click.pass_obj
def worker(ctx: object, slots: int | None) -> None:
    """Start a worker with trading.place_order, portfolio.rebalance, risk.monitor, trading.reconcile and
    marketdata.ingest registered. Blocks until stopped (Ctrl-C)."""
    from zvt_pipeline.config import load_settings
    from zvt_pipeline.workflows.hatchet.client import make_hatchet
    from zvt_pipeline.workflows.hatchet.worker import create_worker

    settings = getattr(ctx, "settings", None) or load_settings()
    create_worker(make_hatchet(), settings, slots=slots).start()


@hatchet.command(name="workflows")
def list_workflows() -> None:
    """List the workflows and their tasks (builds them without connecting to the engine)."""
    from zvt_pipeline.workflows.hatchet.client import make_hatchet
    from zvt_pipeline.workflows.hatchet.worker import build_workflows

    for wf in build_workflows(make_hatchet()).all:
        click.echo(f"{wf.name}: {', '.join(t.name for t in wf.tasks)}")
