"""Starting Hatchet runs from the CLI (``zvt-pipeline submit --via hatchet``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from zvt_pipeline.errors import RetryableError
from zvt_pipeline.messages.commands import OrderSpec, SubmitOrder
from zvt_pipeline.workflows.hatchet.models import PlaceOrderInput
from zvt_pipeline.workflows.submit import Submitted

if TYPE_CHECKING:
    from hatchet_sdk import Hatchet

    from zvt_pipeline.cli.context import CliContext


class HatchetUnavailable(RetryableError):
    code = "hatchet_unavailable"


def make_hatchet() -> Hatchet:
    """A Hatchet client from the SDK's own environment (``HATCHET_CLIENT_TOKEN`` ...)."""
    from hatchet_sdk import Hatchet

    try:
        return Hatchet()
    except Exception as exc:  # the SDK raises ValueError on a missing or malformed token
        raise HatchetUnavailable(f"HATCHET_CLIENT_TOKEN: cannot build a Hatchet client: {exc}") from exc


async def start_place_order(hatchet: Hatchet, inp: PlaceOrderInput) -> Any:
    """Start a ``trading.place_order`` run and return its reference without waiting (``aio_run``: the
    blocking ``run()`` polls for results only once a second)."""
    from zvt_pipeline.workflows.hatchet.config import HatchetConfig
    from zvt_pipeline.workflows.hatchet.place_order import define

    return await define(hatchet, HatchetConfig()).workflow.aio_run(inp, wait_for_result=False)


def submit_via_hatchet(
    ctx: CliContext, command: SubmitOrder, run_id: str, hatchet: Hatchet | None = None
) -> Submitted:
    """Record the run like a Streams submit (``wf:<run_id>``, ``workflow.started``, ``order.requested``; a
    client order id in use is refused here), then start it on Hatchet. If the engine cannot be reached the
    run stays recorded and ``zvt-pipeline resume RUN_ID`` finishes it on the Streams path."""
    submitted = ctx.workflows.submit(command, run_id=run_id, invoker="hatchet")
    order = OrderSpec.model_validate(command.model_dump())
    try:
        client = hatchet or make_hatchet()
        asyncio.run(start_place_order(client, PlaceOrderInput(order=order, run_id=submitted.run_id)))
    except HatchetUnavailable as exc:
        raise HatchetUnavailable(f"{exc} (run {run_id} is recorded: `zvt-pipeline resume {run_id}`)") from exc
    except Exception as exc:
        raise HatchetUnavailable(
            f"could not start run {run_id} on Hatchet ({type(exc).__name__}: {exc}); it is recorded: "
            f"finish it with `zvt-pipeline resume {run_id}`"
        ) from exc
    return submitted
