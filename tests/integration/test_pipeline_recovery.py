"""Proofs on a real Redis with real worker processes (issue: crash-proof resume, scale-out).

Numbers printed here (recovery time) are observations, not assertions.
"""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal

import pytest
import redis

from tests.integration.pipeline_support import (
    audit,
    make_runtime,
    open_runs,
    prepare,
    start_worker,
    stop,
    wait_until_done,
)
from zvt_pipeline.projections import rebuild_from_store, verify
from zvt_pipeline.workflows.submit import Workflows

pytestmark = pytest.mark.slow


def test_kill_9_mid_flight_loses_and_duplicates_nothing(
    redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    runtime = make_runtime(redis_url, key_prefix)
    orders = prepare(runtime, 2000)
    idle_ms = 1000
    args = ("--idle-ms", str(idle_ms), "--batch", "50")
    workers = [start_worker(redis_url, key_prefix, *args) for _ in range(2)]
    try:
        Workflows(runtime.bus, runtime.store).submit_many(orders)
        deadline = time.monotonic() + 60
        while open_runs(runtime) > len(orders) * 0.7 and time.monotonic() < deadline:
            time.sleep(0.01)
        in_flight = open_runs(runtime)
        assert 0 < in_flight < len(orders), "the kill must land mid-way"
        os.kill(workers[0].pid, signal.SIGKILL)  # no cleanup, no ack: its pending entries must be claimed
        killed_at = time.monotonic()
        workers.append(start_worker(redis_url, key_prefix, *args))  # a restarted node
        waited = wait_until_done(runtime, timeout=120)
        print(
            f"\nkill -9 with {in_flight} runs open: all finished {time.monotonic() - killed_at:.2f} s after the kill "
            f"(idle bound {idle_ms} ms)"
        )
        assert open_runs(runtime) == 0, f"{open_runs(runtime)} runs unfinished after {waited:.1f} s"
    finally:
        stop(workers)

    result = audit(runtime, [o.client_order_id for o in orders])
    # every intent ends in exactly one final state
    assert {coid: len(f) for coid, f in result["finals"].items() if len(f) != 1} == {}
    # the venue saw exactly one order per accepted intent, and none for rejected ones
    assert result["venue_orders"] <= result["validated"]
    no_route = {
        c
        for c in result["validated"] - result["venue_orders"]
        if (runtime.client.hget(runtime.keys.route_decision(c), "venue") is None)
    }
    assert result["validated"] - result["venue_orders"] <= no_route | _failed_before_submit(
        runtime, result["validated"]
    )
    # no gap in any stream's versions
    assert result["gaps"] == []
    # the projections equal what the event store implies
    assert verify(runtime, rebuild_from_store(runtime)) == []


def _failed_before_submit(runtime, coids):  # type: ignore[no-untyped-def]
    from zvt_pipeline.step import order_stream

    return {
        c for c in coids if not any(e.type == "order.submitted" for e in runtime.store.read(order_stream(c)))
    }


def test_two_nodes_per_step_split_the_work_with_the_same_results(
    redis_url: str, redis_client: redis.Redis
) -> None:
    import uuid

    results = []
    for layout in ("one worker", "two per step"):
        prefix = f"t{uuid.uuid4().hex[:10]}:"
        runtime = make_runtime(redis_url, prefix)
        # Deep books and small orders: every valid order fills at the touch whatever the processing order,
        # so one worker and six must give identical results.
        orders = [
            o
            for o in prepare(runtime, 300, seed=5)
            if o.type.value == "limit" and o.time_in_force.value == "IOC"
        ]
        if layout == "one worker":
            procs = [start_worker(redis_url, prefix, "--batch", "5")]
        else:
            procs = [
                start_worker(redis_url, prefix, "--steps", step, "--batch", "5")
                for step in ("risk", "execute", "portfolio")
                for _ in range(2)
            ]
            time.sleep(1.5)  # both consumers of a step are reading before the work arrives
        try:
            Workflows(runtime.bus, runtime.store).submit_many(orders)
            wait_until_done(runtime, timeout=90)
            assert open_runs(runtime) == 0
            consumers = {
                step: [
                    c["name"]
                    for c in runtime.client.xinfo_consumers(runtime.keys.step_stream(step), "workers")
                ]
                for step in ("risk", "execute", "portfolio")
            }
        finally:
            stop(procs)
        audit_ = audit(runtime, [o.client_order_id for o in orders])
        results.append(
            {
                "finals": audit_["finals"],
                "fills": audit_["fills"],
                "consumers": consumers,
                "positions": {
                    a: {k: v.amount for k, v in s.positions.items()} for a, s in _portfolio(runtime).items()
                },
            }
        )
        for key in redis_client.scan_iter(match=f"{prefix}*", count=5000):
            redis_client.delete(key)
    one, two = results
    assert one["finals"] == two["finals"]
    assert one["fills"] == two["fills"] and sum(one["fills"].values(), Decimal(0)) > 0
    assert one["positions"] == two["positions"]
    # with two consumers per step, both took part
    assert all(len(names) == 2 for names in two["consumers"].values()), two["consumers"]


def _portfolio(runtime):  # type: ignore[no-untyped-def]
    from zvt_pipeline.portfolio.store import PortfolioStore

    return PortfolioStore(runtime.client, runtime.keys).snapshot()
