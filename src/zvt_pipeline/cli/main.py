"""``zvt-pipeline``: run the demo, workers, submit orders, inspect state. Errors print one line, no traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
import redis

from zvt_pipeline.cli.context import CliContext
from zvt_pipeline.cli.output import err_console
from zvt_pipeline.errors import ZvtError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="zvt-pipeline")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Event-driven crypto trading pipeline: risk -> route -> execute -> portfolio.

    With no REDIS_URL set, everything runs on an embedded private Redis under ~/.zvt-pipeline.
    Start with `zvt-pipeline demo`.
    """
    ctx.obj = CliContext()


def _register() -> None:
    # Imported here so that each command module stays small and `--help` stays fast.
    from zvt_pipeline.cli import commands_demo, commands_ops, commands_orders, commands_state

    for module in (commands_demo, commands_orders, commands_state, commands_ops):
        for command in module.COMMANDS:
            cli.add_command(command)
    from zvt_pipeline.workflows.hatchet.cli import hatchet  # hatchet_sdk itself is imported only when used

    cli.add_command(hatchet)
    try:
        from zvt_pipeline.cli import commands_invoke
    except ImportError:  # pragma: no cover - the Lambda tooling is part of the [aws] extra
        return
    for command in commands_invoke.COMMANDS:
        cli.add_command(command)


_register()


def main(argv: Sequence[str] | None = None) -> None:
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None, prog_name="zvt-pipeline", standalone_mode=False
        )
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except ZvtError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)
    except redis.exceptions.ConnectionError as exc:
        err_console.print(f"error: cannot reach Redis: {exc}", markup=False, highlight=False)
        sys.exit(3)
    except Exception as exc:
        # A bug, not a user error: one line by default, the traceback with ZVT_DEBUG=1.
        if os.environ.get("ZVT_DEBUG"):
            raise
        err_console.print(
            f"error: unexpected {type(exc).__name__}: {exc} (ZVT_DEBUG=1 shows the traceback)", markup=False
        )
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
