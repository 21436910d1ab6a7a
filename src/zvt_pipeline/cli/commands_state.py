"""State commands: events (and, once wired, positions, balances, replay)."""

from __future__ import annotations

import time

import click

from zvt_pipeline.cli.context import CliContext
from zvt_pipeline.cli.output import json_option, print_json, table

pass_ctx = click.make_pass_decorator(CliContext)


@click.command()
@click.option(
    "--stream", default=None, help="One stream, e.g. order-<client_order_id>; default: all, in global order."
)
@click.option(
    "--after",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Version (with --stream) or global position.",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--follow", is_flag=True, help="Keep printing new events (global log only).")
@json_option
@pass_ctx
def events(ctx: CliContext, stream: str | None, after: int, limit: int, follow: bool, as_json: bool) -> None:
    """Print events from the event store."""
    store = ctx.runtime.store
    while True:
        page = store.read(stream, after, limit) if stream else store.read_all(after, limit)
        if as_json:
            for e in page:
                print_json(e.model_dump(mode="json"))
        elif page or not follow:
            table(
                "events",
                ["position", "stream", "version", "type", "occurred_at"],
                [(e.position, e.stream_id, e.version, e.type, e.occurred_at.isoformat()) for e in page],
            )
        if not follow or stream:
            return
        if page:
            after = page[-1].position or after
        else:
            time.sleep(0.5)


COMMANDS = [events]
