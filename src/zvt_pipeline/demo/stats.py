"""Summaries of finished workflow runs: outcomes, rejection rules, latency percentiles. Pure over dicts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import redis

from zvt_pipeline.state.keys import Keys


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def latency_summary_ms(latencies_s: Iterable[float]) -> dict[str, float]:
    values = sorted(v * 1000 for v in latencies_s)
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50), 3),
        "p90_ms": round(percentile(values, 90), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(values[-1], 3) if values else 0.0,
    }


def read_runs(
    client: redis.Redis, keys: Keys, run_ids: Sequence[str], chunk: int = 1000
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for i in range(0, len(run_ids), chunk):
        pipe = client.pipeline(transaction=False)
        for run_id in run_ids[i : i + chunk]:
            pipe.hgetall(keys.workflow(run_id))
        for raw in pipe.execute():
            out.append({k.decode(): v.decode() for k, v in raw.items()})
    return out


def summarize_runs(runs: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    outcomes = Counter(r.get("outcome", r.get("status", "pending")) for r in runs)
    rules = Counter(r["result_rule"] for r in runs if r.get("outcome") == "rejected" and "result_rule" in r)
    latencies = [
        (datetime.fromisoformat(r["completed_at"]) - datetime.fromisoformat(r["started_at"])).total_seconds()
        for r in runs
        if "completed_at" in r and "started_at" in r
    ]
    return {
        "orders": len(runs),
        "outcomes": dict(outcomes.most_common()),
        "rejected_by_rule": dict(rules.most_common()),
        "latency_requested_to_completed": latency_summary_ms(latencies),
    }


def count_finished(client: redis.Redis, keys: Keys) -> int:
    """How many runs are no longer open (cheap: one ZCARD), given the number submitted."""
    return int(client.zcard(keys.workflows_open))
