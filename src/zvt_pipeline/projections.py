"""Rebuild the Redis projections from the event store, and compare them with the live ones.

The event store is the record of truth; Redis state is derived. ``verify`` diffs what the events imply
against what Redis holds; ``rebuild`` overwrites Redis with it. Covered projections:
- portfolio: positions, cash balances, applied fills (``portfolio/rebuild.py``);
- workflow progress: the final status and outcome of every run (``workflow.completed`` / ``workflow.failed``);
- trading state: the last ``trading_state.changed`` per scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zvt_pipeline.messages.events import TradingStateChanged, WorkflowCompleted, WorkflowFailed
from zvt_pipeline.portfolio.engine import AccountState
from zvt_pipeline.portfolio.rebuild import diff as portfolio_diff
from zvt_pipeline.portfolio.rebuild import rebuild as rebuild_portfolio
from zvt_pipeline.portfolio.store import PortfolioStore
from zvt_pipeline.runtime import Runtime


@dataclass
class Rebuilt:
    events: int = 0
    portfolio: dict[str, AccountState] = field(default_factory=dict)
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)
    """run id -> (status, outcome)."""
    trading_state: dict[str, str] = field(default_factory=dict)


def rebuild_from_store(runtime: Runtime) -> Rebuilt:
    out = Rebuilt()
    events = []
    for env in runtime.store.iter_all(0, batch=5000):
        out.events += 1
        p = env.payload
        if isinstance(p, WorkflowCompleted):
            out.runs[p.run_id] = ("completed", p.outcome)
        elif isinstance(p, WorkflowFailed):
            out.runs[p.run_id] = ("failed", "failed")
        elif isinstance(p, TradingStateChanged):
            out.trading_state[p.account_id or "*"] = p.state.value
        events.append(env)
    out.portfolio = rebuild_portfolio(events)
    return out


def verify(runtime: Runtime, rebuilt: Rebuilt) -> list[str]:
    """Differences between the projections the events imply and the live Redis state (empty = none)."""
    live_portfolio = PortfolioStore(runtime.client, runtime.keys).snapshot()
    diffs = portfolio_diff(rebuilt.portfolio, live_portfolio)
    pipe = runtime.client.pipeline(transaction=False)
    run_ids = sorted(rebuilt.runs)
    for run_id in run_ids:
        pipe.hmget(runtime.keys.workflow(run_id), "status", "outcome")
    for run_id, (status, outcome) in zip(run_ids, pipe.execute(), strict=True):
        live = tuple(v.decode() if v else None for v in (status, outcome))
        if live != rebuilt.runs[run_id]:
            diffs.append(f"workflow {run_id}: events say {rebuilt.runs[run_id]}, redis has {live}")
    live_states = {
        k.decode(): v.decode() for k, v in runtime.client.hgetall(runtime.keys.trading_state).items()
    }
    for scope, state in sorted(rebuilt.trading_state.items()):
        if live_states.get(scope) != state:
            diffs.append(f"trading state {scope}: events say {state}, redis has {live_states.get(scope)}")
    return diffs


def apply(runtime: Runtime, rebuilt: Rebuilt) -> dict[str, Any]:
    """Overwrite the Redis projections with the rebuilt state."""
    store = PortfolioStore(runtime.client, runtime.keys)
    for state in rebuilt.portfolio.values():
        store.replace(state)
    pipe = runtime.client.pipeline(transaction=False)
    for run_id, (status, outcome) in rebuilt.runs.items():
        pipe.hset(runtime.keys.workflow(run_id), mapping={"status": status, "outcome": outcome})
        pipe.zrem(runtime.keys.workflows_open, run_id)
    if rebuilt.trading_state:
        pipe.hset(runtime.keys.trading_state, mapping=rebuilt.trading_state)
    pipe.execute()
    return {
        "accounts": len(rebuilt.portfolio),
        "runs": len(rebuilt.runs),
        "trading_states": len(rebuilt.trading_state),
    }
