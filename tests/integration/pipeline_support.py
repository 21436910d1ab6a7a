"""Helpers for the multi-process pipeline proofs: prepared state, worker processes started through the CLI
exactly as a user (or a second node) would start them, and checks over the event store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from zvt_pipeline.config import load_settings
from zvt_pipeline.demo.runner import DemoConfig
from zvt_pipeline.demo.runner import prepare as demo_prepare
from zvt_pipeline.messages.commands import SubmitOrder
from zvt_pipeline.messages.events import OrderExecuted, OrderValidated
from zvt_pipeline.runtime import Runtime
from zvt_pipeline.step import order_stream


def make_runtime(redis_url: str, prefix: str) -> Runtime:
    return Runtime.from_settings(load_settings(redis_url=redis_url, key_prefix=prefix))


def prepare(runtime: Runtime, orders: int, seed: int = 11) -> list[SubmitOrder]:
    """Fresh state under the runtime's prefix: limits, one seeded book per market, funded accounts."""
    return demo_prepare(runtime, DemoConfig(orders=orders, seed=seed))


def worker_env(redis_url: str, prefix: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, "ZVT_KEY_PREFIX": prefix, "PYTHONUNBUFFERED": "1"}


def start_worker(redis_url: str, prefix: str, *args: str) -> subprocess.Popen[bytes]:
    """One worker process, as `zvt-pipeline worker ...` on another node would be."""
    return subprocess.Popen(
        [sys.executable, "-m", "zvt_pipeline", "worker", *args],
        env=worker_env(redis_url, prefix),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def open_runs(runtime: Runtime) -> int:
    return int(runtime.client.zcard(runtime.keys.workflows_open))


def wait_until_done(runtime: Runtime, timeout: float) -> float:
    started = time.monotonic()
    while open_runs(runtime) and time.monotonic() - started < timeout:
        time.sleep(0.05)
    return time.monotonic() - started


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def audit(runtime: Runtime, coids: Sequence[str]) -> dict[str, Any]:
    """Per order: final states, fills and venue orders, straight from the event store and the venue."""
    finals: dict[str, list[str]] = {}
    fills: dict[str, Decimal] = {}
    validated: set[str] = set()
    gaps: list[str] = []
    for coid in coids:
        events = runtime.store.read(order_stream(coid))
        versions = [e.version for e in events]
        if versions != list(range(1, len(events) + 1)):
            gaps.append(coid)
        finals[coid] = [e.type for e in events if e.type in ("workflow.completed", "workflow.failed")]
        fills[coid] = sum(
            (e.payload.amount for e in events if isinstance(e.payload, OrderExecuted)), Decimal(0)
        )
        if any(isinstance(e.payload, OrderValidated) for e in events):
            validated.add(coid)
    venue_orders = {
        key.decode().rsplit(":", 1)[1]
        for key in runtime.client.scan_iter(match=runtime.keys.paper_order("paper", "*"), count=5000)
    }
    return {
        "finals": finals,
        "fills": fills,
        "validated": validated,
        "venue_orders": venue_orders,
        "gaps": gaps,
    }
