"""Pipeline benchmark: measured on the machine it runs on, printed as JSON, never asserted.

- ``saturation``: submit N orders at once, W worker processes, time until every workflow finished.
- ``latency``: a fixed offered load (default 1,000 orders/s) for a few seconds; per-order latency
  requested -> completed and fill -> position.updated, from the recorded timestamps.
- ``ceiling``: the same number of stream hops carrying the same payloads with no step logic (XREADGROUP,
  then one MULTI per batch: XADD to the next hop + XACK), same number of processes. ``ratio`` =
  pipeline / ceiling says how much the step logic costs relative to pure transport.
- ``profile``: one in-process worker under cProfile over a batch of orders: where the time goes.
"""

from __future__ import annotations

import cProfile
import io
import multiprocessing as mp
import pstats
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from zvt_pipeline.config import Settings
from zvt_pipeline.demo.runner import DemoConfig, reset
from zvt_pipeline.demo.runner import prepare as demo_prepare
from zvt_pipeline.demo.stats import latency_summary_ms, percentile, read_runs
from zvt_pipeline.messages.commands import SubmitOrder
from zvt_pipeline.messages.events import OrderExecuted, PositionUpdated
from zvt_pipeline.runtime import Runtime
from zvt_pipeline.workflows.streams_runner import StepWorker, WorkerConfig
from zvt_pipeline.workflows.submit import Workflows, start_events

HOPS = ("risk", "execute", "portfolio", "done")


@dataclass(frozen=True)
class BenchConfig:
    orders: int = 5000
    workers: int = 2
    rate: float = 1000.0
    latency_seconds: float = 5.0
    profile_orders: int = 1000
    batch: int = 200


def prepare(runtime: Runtime, orders: int, seed: int = 3) -> list[SubmitOrder]:
    return demo_prepare(runtime, DemoConfig(orders=orders, seed=seed))


def _open(runtime: Runtime) -> int:
    return int(runtime.client.zcard(runtime.keys.workflows_open))


def saturation(runtime: Runtime, settings: Settings, config: BenchConfig) -> dict[str, Any]:
    from zvt_pipeline.cli.commands_ops import start_workers

    orders = prepare(runtime, config.orders)
    procs, stop = start_workers(settings, WorkerConfig(batch=config.batch, block_ms=20), config.workers)
    try:
        time.sleep(1.0)  # let the workers import and connect: startup is not throughput
        started = time.monotonic()
        Workflows(runtime.bus, runtime.store).submit_many(orders)
        while _open(runtime) and time.monotonic() - started < 600:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=10)
    return {
        "orders": len(orders),
        "workers": config.workers,
        "elapsed_s": round(elapsed, 3),
        "orders_per_s": round(len(orders) / elapsed, 1),
        "unfinished": _open(runtime),
    }


def latency(runtime: Runtime, settings: Settings, config: BenchConfig) -> dict[str, Any]:
    from zvt_pipeline.cli.commands_ops import start_workers

    n = int(config.rate * config.latency_seconds)
    orders = prepare(runtime, n, seed=4)
    start_position = runtime.store.read_all(0, 1)
    procs, stop = start_workers(settings, WorkerConfig(batch=config.batch, block_ms=2), config.workers)
    wf = Workflows(runtime.bus, runtime.store)
    run_ids: list[str] = []
    try:
        time.sleep(1.0)
        started = time.monotonic()
        tick = 0.01  # submit in 10 ms slices: a steady offered load, not one burst
        per_tick = max(1, round(config.rate * tick))
        for i in range(0, n, per_tick):
            run_ids += [s.run_id for s in wf.submit_many(orders[i : i + per_tick])]
            time.sleep(max(0.0, started + (i + per_tick) / config.rate - time.monotonic()))
        offered_s = time.monotonic() - started
        while _open(runtime) and time.monotonic() - started < 300:
            time.sleep(0.01)
        drained_s = time.monotonic() - started
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=10)
    runs = read_runs(runtime.client, runtime.keys, run_ids)
    from datetime import datetime

    lat = [
        (datetime.fromisoformat(r["completed_at"]) - datetime.fromisoformat(r["started_at"])).total_seconds()
        for r in runs
        if "completed_at" in r
    ]
    return {
        "offered_rate": config.rate,
        "achieved_offered_rate": round(n / offered_s, 1),
        "orders": n,
        "drained_s": round(drained_s, 3),
        "requested_to_completed": latency_summary_ms(lat),
        "fill_to_position_updated": _fill_latency(
            runtime, (start_position[0].position or 1) - 1 if start_position else 0
        ),
    }


def _fill_latency(runtime: Runtime, after: int) -> dict[str, float]:
    fills: dict[str, Any] = {}
    gaps: list[float] = []
    for env in runtime.store.iter_all(after, batch=5000):
        if isinstance(env.payload, OrderExecuted):
            fills[str(env.event_id)] = env.occurred_at
        elif isinstance(env.payload, PositionUpdated) and env.causation_id in fills:
            gaps.append((env.occurred_at - fills[env.causation_id]).total_seconds())
    return latency_summary_ms(gaps)


# --- ceiling: the transport alone -----------------------------------------------------------------------


def _hop_worker(url: str, prefix: str, batch: int, stop: Any) -> None:
    client = redis.Redis.from_url(url) if "://" in url else redis.Redis(unix_socket_path=url)
    streams = {f"{prefix}hop:{h}": i for i, h in enumerate(HOPS[:-1])}
    consumer = uuid.uuid4().hex[:8]
    while not stop.is_set():
        reply = client.xreadgroup("g", consumer, {k: ">" for k in streams}, count=batch, block=20)
        for key, entries in reply or []:
            key = key.decode()
            nxt = f"{prefix}hop:{HOPS[streams[key] + 1]}"
            pipe = client.pipeline(transaction=True)
            for _, fields in entries:
                pipe.xadd(nxt, fields)
            pipe.xack(key, "g", *[eid for eid, _ in entries])
            pipe.execute()


def ceiling(runtime: Runtime, settings: Settings, config: BenchConfig) -> dict[str, Any]:
    from zvt_pipeline.cli.commands_ops import shared_settings

    url = shared_settings(settings).redis_url or ""
    prefix = f"{runtime.keys.prefix}ceil{uuid.uuid4().hex[:6]}:"
    client = runtime.client
    order = prepare(runtime, 1)[0]  # resets the prefix: before the hop streams exist
    for h in HOPS[:-1]:
        client.xgroup_create(f"{prefix}hop:{h}", "g", id="0", mkstream=True)
    payload = {
        "r": "run",
        "t": __import__("zvt_pipeline.bus.streams", fromlist=["x"]).encode_triggers(
            start_events(order, "run")[1:]
        ),
    }
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs = [
        ctx.Process(target=_hop_worker, args=(url, prefix, config.batch, stop), daemon=True)
        for _ in range(config.workers)
    ]
    for p in procs:
        p.start()
    try:
        time.sleep(1.0)
        started = time.monotonic()
        for i in range(0, config.orders, 500):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(500, config.orders - i)):
                pipe.xadd(f"{prefix}hop:risk", payload)
            pipe.execute()
        while client.xlen(f"{prefix}hop:done") < config.orders and time.monotonic() - started < 300:
            time.sleep(0.005)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=10)
        client.delete(*[f"{prefix}hop:{h}" for h in HOPS])
    return {
        "messages": config.orders,
        "hops": len(HOPS) - 1,
        "payload_bytes": len(payload["t"]),
        "elapsed_s": round(elapsed, 3),
        "orders_per_s": round(config.orders / elapsed, 1),
    }


def profile(runtime: Runtime, config: BenchConfig) -> dict[str, Any]:
    orders = prepare(runtime, config.profile_orders, seed=5)
    Workflows(runtime.bus, runtime.store).submit_many(orders)
    worker = StepWorker(
        runtime.bus, runtime.store, runtime.step, WorkerConfig(batch=config.batch, block_ms=1)
    )
    for step in ("risk", "execute", "portfolio"):
        runtime.step(step)
    calls = runtime.client.info("commandstats")
    before = sum(v["calls"] for v in calls.values())
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    while _open(runtime):
        worker.poll_once(block_ms=1)
    prof.disable()
    elapsed = time.perf_counter() - started
    after = sum(v["calls"] for v in runtime.client.info("commandstats").values())
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    own = sorted(((v[2], k) for k, v in stats.stats.items()), reverse=True)[:12]  # type: ignore[attr-defined]
    return {
        "orders": len(orders),
        "single_process_orders_per_s_under_profiler": round(len(orders) / elapsed, 1),
        "redis_commands_per_order": round((after - before) / len(orders), 1),
        "top_self_time": [
            {"function": f"{k[0].rsplit('/', 2)[-1]}:{k[2]}", "share": round(t / total, 3)} for t, k in own
        ],
    }


def run(settings: Settings, config: BenchConfig, parts: tuple[str, ...]) -> dict[str, Any]:
    runtime = Runtime.from_settings(settings)
    out: dict[str, Any] = {"config": config.__dict__, "machine": _machine()}
    if "saturation" in parts:
        out["saturation"] = saturation(runtime, settings, config)
    if "ceiling" in parts:
        out["ceiling"] = ceiling(runtime, settings, config)
    if "saturation" in out and "ceiling" in out:
        out["ratio"] = round(out["saturation"]["orders_per_s"] / out["ceiling"]["orders_per_s"], 3)
    if "latency" in parts:
        out["latency"] = latency(runtime, settings, config)
    if "profile" in parts:
        out["profile"] = profile(runtime, config)
    reset(runtime)
    return out


def _machine() -> dict[str, Any]:
    import os
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


__all__ = ["BenchConfig", "percentile", "run"]
