"""State commands: events, replay, positions, balances, deposit."""

from __future__ import annotations

import time

import click

from zvt_pipeline.cli.context import CliContext
from zvt_pipeline.cli.output import console, json_option, print_json, report, table

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


@click.command()
@click.option(
    "--verify", is_flag=True, help="Only compare: print differences, change nothing (exit 1 if any)."
)
@json_option
@pass_ctx
def replay(ctx: CliContext, verify: bool, as_json: bool) -> None:
    """Rebuild the Redis projections from the event store (or, with --verify, diff them against Redis)."""
    from zvt_pipeline import projections

    rebuilt = projections.rebuild_from_store(ctx.runtime)
    if verify:
        diffs = projections.verify(ctx.runtime, rebuilt)
        data = {
            "events": rebuilt.events,
            "accounts": len(rebuilt.portfolio),
            "runs": len(rebuilt.runs),
            "differences": diffs,
        }
        report(
            as_json,
            data,
            lambda d: console.print(
                f"replayed {d['events']} events ({d['accounts']} accounts, {d['runs']} finished runs): "
                + ("no differences" if not diffs else f"{len(diffs)} differences\n" + "\n".join(diffs[:50]))
            ),
        )
        if diffs:
            raise SystemExit(1)
        return
    done = projections.apply(ctx.runtime, rebuilt)
    report(
        as_json,
        {"events": rebuilt.events, **done},
        lambda d: console.print(
            f"rebuilt from {d['events']} events: {d['accounts']} accounts, {d['runs']} runs, {d['trading_states']} trading states"
        ),
    )


@click.command()
@click.option("--account", "account_id", default=None, help="One account (default: all).")
@json_option
@pass_ctx
def positions(ctx: CliContext, account_id: str | None, as_json: bool) -> None:
    """Positions with average entry, realized and unrealized PnL at the last marks."""
    from zvt_pipeline.portfolio.store import PortfolioStore
    from zvt_pipeline.portfolio.valuation import value_account

    store = PortfolioStore(ctx.runtime.client, ctx.runtime.keys)
    marks = store.marks()
    rows, data = [], []
    for account in [account_id] if account_id else store.accounts():
        value = value_account(store.load(account), marks)
        for pv in value.positions:
            item = {"account": account, **{k: getattr(pv, k) for k in pv.__dataclass_fields__}}
            data.append(item)
            rows.append(
                [
                    item.get(k)
                    for k in (
                        "account",
                        "venue",
                        "symbol",
                        "amount",
                        "avg_entry_price",
                        "mark",
                        "realized_pnl",
                        "unrealized_pnl",
                    )
                ]
            )
    report(
        as_json,
        data,
        lambda _: table(
            "positions",
            ["account", "venue", "symbol", "amount", "avg entry", "mark", "realized pnl", "unrealized pnl"],
            rows,
            right=["amount", "avg entry", "mark", "realized pnl", "unrealized pnl"],
        ),
    )


@click.command()
@click.option("--account", "account_id", default=None, help="One account (default: all).")
@json_option
@pass_ctx
def balances(ctx: CliContext, account_id: str | None, as_json: bool) -> None:
    """Cash balances, amounts held by open orders, and equity."""
    from zvt_pipeline.portfolio.store import PortfolioStore
    from zvt_pipeline.portfolio.valuation import value_account

    rt = ctx.runtime
    store = PortfolioStore(rt.client, rt.keys)
    marks = store.marks()
    data, rows = [], []
    for account in [account_id] if account_id else store.accounts():
        reserved = {k.decode(): v.decode() for k, v in rt.client.hgetall(rt.keys.reserved(account)).items()}
        value = value_account(store.load(account), marks)
        for currency, amount in sorted(store.balances(account).items()):
            data.append(
                {
                    "account": account,
                    "currency": currency,
                    "cash": amount,
                    "reserved": reserved.get(currency, "0"),
                    "equity": value.equity if currency == value.quote_currency else None,
                }
            )
            rows.append([account, currency, amount, reserved.get(currency, "0"), data[-1]["equity"]])
    report(
        as_json,
        data,
        lambda _: table(
            "balances",
            ["account", "currency", "cash", "reserved", "equity"],
            rows,
            right=["cash", "reserved", "equity"],
        ),
    )


@click.command()
@click.option("--account", "account_id", required=True)
@click.option("--currency", default="USDT", show_default=True)
@click.option("--amount", required=True, help="Decimal amount to credit.")
@json_option
@pass_ctx
def deposit(ctx: CliContext, account_id: str, currency: str, amount: str, as_json: bool) -> None:
    """Credit cash to an account (paper trading funding); recorded as balance.deposited."""
    from decimal import Decimal, InvalidOperation

    from pydantic import ValidationError

    from zvt_pipeline.errors import InvalidMessage
    from zvt_pipeline.messages import codec
    from zvt_pipeline.messages.envelope import Envelope
    from zvt_pipeline.messages.events import BalanceDeposited
    from zvt_pipeline.portfolio.rebuild import account_stream
    from zvt_pipeline.portfolio.store import PortfolioStore

    try:
        payload = BalanceDeposited(account_id=account_id, currency=currency, amount=Decimal(amount))
    except InvalidOperation:
        raise InvalidMessage(f"amount: {amount!r} is not a decimal number", field="amount") from None
    except ValidationError as exc:
        raise codec.first_error(exc) from None
    rt = ctx.runtime
    recorded = PortfolioStore(rt.client, rt.keys).deposit(
        payload.account_id, payload.currency, payload.amount
    )
    stream = account_stream(account_id)
    rt.store.append(stream, [Envelope.new(recorded, stream_id=stream, correlation_id="operator")])
    report(
        as_json,
        recorded.model_dump(mode="json"),
        lambda _: console.print(f"credited {amount} {currency} to {account_id}"),
    )


COMMANDS = [events, replay, positions, balances, deposit]
