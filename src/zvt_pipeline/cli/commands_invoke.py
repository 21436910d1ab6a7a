"""``zvt-pipeline invoke STEP --event FILE``: run a step's Lambda handler locally, as the runtime would."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import click

from zvt_pipeline.cli.output import err_console, print_json
from zvt_pipeline.local_invoke import STEPS, invoke_step


@click.command("invoke")
@click.argument("step", type=click.Choice(STEPS))
@click.option(
    "--event",
    "event_file",
    type=click.File("rb"),
    required=True,
    help="JSON event file (an envelope, a seam request, an SQS or Kinesis batch); - reads stdin.",
)
@click.option(
    "--functions-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Where functions/<step>/app.py live (default: ./functions or the nearest parent's).",
)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=30.0, show_default=True)
@click.option("--memory", "memory_mb", type=click.IntRange(min=128), default=512, show_default=True)
def invoke(
    step: str, event_file: BinaryIO, functions_dir: Path | None, timeout_s: float, memory_mb: int
) -> int:
    """Run the STEP function's handler on an event, with a Lambda context, against this environment's
    Redis (REDIS_URL, or the embedded one) and event store.

    Prints the answer as JSON. A function error prints the runtime's error document and exits 1.
    """
    body = event_file.read()
    result = invoke_step(step, body, functions_dir=functions_dir, timeout_s=timeout_s, memory_mb=memory_mb)
    if result.error is not None:
        print_json({"error": {k: v for k, v in result.error.items() if k != "stackTrace"}})
        err_console.print(
            f"function error {result.error['errorType']} after {result.duration_ms:.1f} ms",
            markup=False,
            highlight=False,
        )
        return 1
    print_json(result.response)
    err_console.print(f"ok in {result.duration_ms:.1f} ms", markup=False, highlight=False)
    return 0


COMMANDS = [invoke]
