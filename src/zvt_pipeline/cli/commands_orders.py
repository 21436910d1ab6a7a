"""Order commands: submit, status, resume."""

from __future__ import annotations

import time
from decimal import Decimal

import click
from pydantic import ValidationError

from zvt_pipeline.cli.context import CliContext
from zvt_pipeline.cli.output import console, json_option, report, table
from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.messages import codec
from zvt_pipeline.messages.commands import SubmitOrder
from zvt_pipeline.messages.types import TradingState
from zvt_pipeline.workflows.submit import default_client_order_id, new_run_id

pass_ctx = click.make_pass_decorator(CliContext)


def wait_for(ctx: CliContext, run_id: str, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        status = ctx.workflows.status(run_id) or {}
        if status.get("status") in ("completed", "failed") or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


@click.command()
@click.option("--account", "account_id", required=True, help="Account id, e.g. A.")
@click.option("--symbol", required=True, help="ccxt unified symbol, e.g. BTC/USDT.")
@click.option("--side", type=click.Choice(["buy", "sell"]), required=True)
@click.option("--type", "type_", type=click.Choice(["market", "limit"]), default="limit", show_default=True)
@click.option("--amount", required=True, help="Base-currency amount, e.g. 0.01.")
@click.option("--price", default=None, help="Limit price (limit orders only).")
@click.option(
    "--tif", "time_in_force", type=click.Choice(["GTC", "IOC", "FOK"]), default="GTC", show_default=True
)
@click.option("--reduce-only", is_flag=True, help="Only reduce an existing position.")
@click.option("--venue", default=None, help="Preferred venue (default: the router chooses).")
@click.option("--client-order-id", default=None, help="Idempotency key (default: derived from the run id).")
@click.option("--wait/--no-wait", default=False, help="Wait until the workflow finishes.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait with --wait.")
@click.option(
    "--via", type=click.Choice(["streams", "hatchet"]), default="streams", show_default=True, help="Invoker."
)
@json_option
@pass_ctx
def submit(
    ctx: CliContext,
    account_id: str,
    symbol: str,
    side: str,
    type_: str,
    amount: str,
    price: str | None,
    time_in_force: str,
    reduce_only: bool,
    venue: str | None,
    client_order_id: str | None,
    wait: bool,
    timeout: float,
    via: str,
    as_json: bool,
) -> None:
    """Submit one order intent. Workers (`zvt-pipeline worker`) carry it through the steps."""
    run_id = new_run_id()
    try:
        command = SubmitOrder(
            client_order_id=client_order_id or default_client_order_id(run_id),
            account_id=account_id,
            symbol=symbol,
            side=side,
            type=type_,
            amount=Decimal(amount) if _is_decimal(amount, "amount") else amount,
            price=Decimal(price) if price is not None and _is_decimal(price, "price") else None,
            time_in_force=time_in_force,
            reduce_only=reduce_only,
            venue=venue,
        )
    except ValidationError as exc:
        raise codec.first_error(exc) from None
    if via == "hatchet":
        from zvt_pipeline.workflows.hatchet.client import submit_via_hatchet

        submitted = submit_via_hatchet(ctx, command, run_id)
    else:
        submitted = ctx.workflows.submit(command, run_id=run_id)
    data: dict[str, object] = {"run_id": submitted.run_id, "client_order_id": submitted.client_order_id}
    if wait:
        data["status"] = wait_for(ctx, submitted.run_id, timeout)
        data["events"] = [e.type for e in ctx.workflows.events(submitted.run_id)]
    report(as_json, data, lambda d: _print_submitted(d, wait))


def _is_decimal(text: str, field: str) -> bool:
    try:
        Decimal(text)
    except Exception:
        raise InvalidMessage(f"{field}: {text!r} is not a decimal number", field=field) from None
    return True


def _print_submitted(data: dict, wait: bool) -> None:
    console.print(f"run {data['run_id']}  client_order_id {data['client_order_id']}")
    if wait:
        status = data["status"]
        if status.get("status") not in ("completed", "failed"):
            console.print(
                f"still {status.get('status', 'pending')} at step {status.get('step')} (is a worker running?)"
            )
        else:
            detail = "  ".join(
                f"{k.removeprefix('result_')}={v}" for k, v in status.items() if k.startswith("result_")
            )
            console.print(
                f"{status.get('status')}: {status.get('outcome')}  {detail}  {status.get('last_error', '')}".rstrip()
            )
        console.print(" -> ".join(data["events"]))


@click.command()
@click.argument("run_id")
@json_option
@pass_ctx
def status(ctx: CliContext, run_id: str, as_json: bool) -> None:
    """Show a workflow run: progress and its events."""
    st = ctx.workflows.status(run_id)
    if st is None:
        raise InvalidMessage(f"run_id: no workflow run {run_id!r}", field="run_id")
    events = ctx.workflows.events(run_id)
    data = {"workflow": st, "events": [e.model_dump(mode="json") for e in events]}

    def render(_: object) -> None:
        console.print(" ".join(f"{k}={v}" for k, v in st.items()))
        table(
            "events",
            ["version", "type", "occurred_at", "detail"],
            [(e.version, e.type, e.occurred_at.isoformat(), _detail(e.payload)) for e in events],
        )

    report(as_json, data, render)


def _detail(payload: object) -> str:
    data = payload.model_dump(mode="json")  # type: ignore[attr-defined]
    for key in ("reason", "venue", "price"):
        if key in data and data[key] is not None:
            return f"{key}={data[key]}"
    return ""


@click.command()
@click.argument("run_id", required=False)
@click.option(
    "--account", "account_id", default=None, help="With no RUN_ID: resume trading for this account only."
)
@click.option("--reason", default="", help="Why (recorded in the event).")
@json_option
@pass_ctx
def resume(ctx: CliContext, run_id: str | None, account_id: str | None, reason: str, as_json: bool) -> None:
    """`resume RUN_ID` finishes a workflow left mid-way (e.g. its Hatchet run died) on the Streams path.
    `resume` with no RUN_ID sets trading back to ACTIVE (globally or for --account)."""
    if run_id:
        done = ctx.workflows.resume(run_id)
        report(as_json, {"run_id": run_id, "resumed": done}, lambda d: console.print(f"{run_id}: {done}"))
        return
    from zvt_pipeline.cli.commands_ops import change_trading_state

    change_trading_state(ctx, TradingState.ACTIVE, account_id, reason, as_json)


@click.command()
@click.argument("client_order_id")
@click.option("--account", "account_id", required=True, help="The order's account.")
@click.option("--reason", default="user request", show_default=True)
@json_option
@pass_ctx
def cancel(ctx: CliContext, client_order_id: str, account_id: str, reason: str, as_json: bool) -> None:
    """Cancel a resting order: at the venue, in the event store (order.canceled), and its risk reservation."""
    from zvt_pipeline.messages.commands import CancelOrder
    from zvt_pipeline.workflows.cancel import cancel_order

    try:
        command = CancelOrder(client_order_id=client_order_id, account_id=account_id, reason=reason)
    except ValidationError as exc:
        raise codec.first_error(exc) from None
    done = cancel_order(ctx.runtime, command)
    report(
        as_json,
        done.model_dump(mode="json"),
        lambda d: console.print(
            f"canceled {client_order_id}: filled {d['filled']}, remaining {d['remaining']} canceled"
        ),
    )


COMMANDS = [submit, status, resume, cancel]
