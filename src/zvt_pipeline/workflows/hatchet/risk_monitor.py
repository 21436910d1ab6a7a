"""``risk.monitor`` (cron): mark every account to market, check drawdown, exposure and loss limits, and move
an account to REDUCING or HALTED when one is breached (``risk.breached`` + ``alert.triggered`` +
``trading_state.changed`` on ``account-<id>``). The pre-trade risk step then enforces the new state.

Only escalations are written (ACTIVE -> REDUCING -> HALTED), so a breach that persists is reported once; an
operator moves the account back with ``zvt-pipeline resume --account``. Event ids derive from the monitor
run, so a retried task writes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from zvt_pipeline.messages.envelope import Envelope, deterministic_event_id
from zvt_pipeline.messages.events import AlertTriggered, RiskBreached, TradingStateChanged
from zvt_pipeline.messages.types import TradingState
from zvt_pipeline.portfolio.store import PortfolioStore
from zvt_pipeline.portfolio.valuation import AccountValue, value_account
from zvt_pipeline.risk.snapshot import get_trading_state, set_trading_state
from zvt_pipeline.workflows.hatchet.config import HatchetConfig
from zvt_pipeline.workflows.hatchet.deps import HatchetDeps, deps_of
from zvt_pipeline.workflows.hatchet.models import RiskMonitorOutput, ScheduledInput

if TYPE_CHECKING:
    from hatchet_sdk import Hatchet
    from hatchet_sdk.runnables.task import Task
    from hatchet_sdk.runnables.workflow import Workflow

NAME = "risk.monitor"
SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True)
class Breach:
    rule: str
    value: Decimal
    limit: Decimal
    action: TradingState
    reason: str


def assess(value: AccountValue, peak: Decimal, config: HatchetConfig) -> list[Breach]:
    """The limits ``value`` breaks, most severe first. Pure."""
    out: list[Breach] = []
    if peak > 0 and value.equity < peak:
        drawdown = (peak - value.equity) / peak
        for pct, state in (
            (config.max_drawdown_pct, TradingState.HALTED),
            (config.reduce_drawdown_pct, TradingState.REDUCING),
        ):
            if drawdown >= pct:
                out.append(
                    Breach(
                        "max_drawdown" if state is TradingState.HALTED else "reduce_drawdown",
                        drawdown.quantize(Decimal("0.0001")),
                        pct,
                        state,
                        f"equity {value.equity} is {drawdown:.2%} below its peak {peak} (limit {pct:.2%})",
                    )
                )
                break
    if config.max_realized_loss is not None and value.realized_pnl < -config.max_realized_loss:
        out.append(
            Breach(
                "max_realized_loss",
                value.realized_pnl,
                -config.max_realized_loss,
                TradingState.HALTED,
                f"realized PnL {value.realized_pnl} {value.quote_currency} < -{config.max_realized_loss}",
            )
        )
    if config.max_gross_exposure is not None and value.gross_exposure > config.max_gross_exposure:
        out.append(
            Breach(
                "max_gross_exposure",
                value.gross_exposure,
                config.max_gross_exposure,
                TradingState.REDUCING,
                f"gross exposure {value.gross_exposure} {value.quote_currency} > {config.max_gross_exposure}",
            )
        )
    return sorted(out, key=lambda b: -SEVERITY[b.action])


def check_account(deps: HatchetDeps, account_id: str, check_id: str) -> list[Breach]:
    """Value one account, track its equity peak, and escalate its trading state on a breach."""
    rt = deps.runtime
    store = PortfolioStore(rt.client, rt.keys)
    value = value_account(store.load(account_id), store.marks())
    raw_peak = rt.client.hget(rt.keys.equity_peaks, account_id)
    peak = max(Decimal(raw_peak.decode()) if raw_peak else value.equity, value.equity)
    rt.client.hset(rt.keys.equity_peaks, account_id, str(peak))
    breaches = assess(value, peak, deps.config)
    if not breaches:
        return []
    worst = breaches[0]
    current = get_trading_state(rt.client, rt.keys, account_id)
    if SEVERITY[worst.action] <= SEVERITY[current]:
        return breaches  # already there: reported when it escalated
    stream = f"account-{account_id}"
    payloads = [
        RiskBreached(
            account_id=account_id,
            rule=worst.rule,
            value=worst.value,
            limit=worst.limit,
            action=worst.action,
            reason=worst.reason,
        ),
        AlertTriggered(
            severity="critical" if worst.action is TradingState.HALTED else "warning",
            source=NAME,
            message=f"account {account_id} -> {worst.action.value}: {worst.reason}",
            account_id=account_id,
            details={b.rule: b.reason for b in breaches},
        ),
        TradingStateChanged(
            state=worst.action, account_id=account_id, reason=f"{worst.rule}: {worst.reason}"
        ),
    ]
    events = [
        Envelope.new(
            p,
            stream_id=stream,
            correlation_id=check_id,
            event_id=deterministic_event_id(check_id, f"risk-monitor/{account_id}", n),
        )
        for n, p in enumerate(payloads)
    ]
    rt.store.append(stream, events)
    set_trading_state(rt.client, rt.keys, worst.action, account_id)
    return breaches


def monitor_body(deps: HatchetDeps, inp: ScheduledInput, check_id: str) -> RiskMonitorOutput:
    rt = deps.runtime
    accounts = inp.accounts or PortfolioStore(rt.client, rt.keys).accounts()
    out = RiskMonitorOutput(checked=list(accounts))
    found = []
    for account in accounts:
        for b in check_account(deps, account, check_id):
            found.append(
                {"account_id": account, "rule": b.rule, "action": b.action.value, "reason": b.reason}
            )
    return out.model_copy(update={"breaches": found})


@dataclass(frozen=True)
class RiskMonitorWorkflow:
    workflow: Workflow[ScheduledInput]
    check: Task[ScheduledInput, RiskMonitorOutput]


def define(hatchet: Hatchet, config: HatchetConfig) -> RiskMonitorWorkflow:
    from zvt_pipeline.workflows.hatchet.place_order import guarded

    wf = hatchet.workflow(
        name=NAME, input_validator=ScheduledInput, on_crons=[config.risk_monitor_cron], concurrency=1
    )

    @wf.task(execution_timeout=timedelta(seconds=50), retries=2)
    def check(input: ScheduledInput, ctx: Any) -> RiskMonitorOutput:
        return guarded(lambda: monitor_body(deps_of(ctx), input, f"risk-monitor-{ctx.workflow_run_id}"))

    return RiskMonitorWorkflow(wf, check)
