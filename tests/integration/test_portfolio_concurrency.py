"""Exactly-once under concurrency: several processes (spawned, like separate workers) each deliver every
fill to the same Redis at the same time; each fill must be applied once and the state must equal one
sequential application."""

from __future__ import annotations

import multiprocessing
import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest
import redis

from zvt_pipeline.messages.events import OrderExecuted
from zvt_pipeline.messages.types import Fee, Side
from zvt_pipeline.portfolio.engine import AccountState, apply_fills
from zvt_pipeline.portfolio.store import PortfolioStore
from zvt_pipeline.state.keys import Keys

PROCESSES = 4
T0 = datetime(2024, 1, 1, tzinfo=UTC)
KEYS = [("paper", "BTC/USDT"), ("binance", "BTC/USDT"), ("paper", "ETH/USDT")]


def make_fills(n: int, seed: int) -> list[OrderExecuted]:
    rng = random.Random(seed)
    fills = []
    for i in range(n):
        venue, symbol = rng.choice(KEYS)
        fee_currency = rng.choice(["USDT", symbol.split("/")[0], "BNB"])
        fills.append(
            OrderExecuted(
                trade_id=f"t{i}",
                client_order_id=f"o{i}",
                account_id=rng.choice(["a1", "a2"]),
                venue=venue,
                symbol=symbol,
                side=rng.choice(list(Side)),
                amount=D(rng.randint(1, 5000)) / 1000,
                price=D(rng.randint(100, 50000)) / 100,
                fee=Fee(cost=D(rng.randint(0, 100)) / 10**5, currency=fee_currency),
                timestamp=T0,
            )
        )
    return fills


def deliver_all(
    redis_url: str, prefix: str, fills_json: list[str], shuffle_seed: int | None, barrier: Any, results: Any
) -> None:
    """One worker process: deliver every fill (in list order, or shuffled), count the ones it applied."""
    fills = [OrderExecuted.model_validate_json(f) for f in fills_json]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(fills)
    store = PortfolioStore(redis.Redis.from_url(redis_url), Keys(prefix))
    barrier.wait()  # start together so the writers really race
    applied = [f.trade_id for f in fills if store.apply(f) is not None]
    results.put(applied)


def run_workers(redis_url: str, prefix: str, fills: list[OrderExecuted], shuffle: bool) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    payload = [f.model_dump_json() for f in fills]
    procs = [
        ctx.Process(
            target=deliver_all, args=(redis_url, prefix, payload, n if shuffle else None, barrier, results)
        )
        for n in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    applied: list[str] = []
    for _ in procs:
        applied += results.get(timeout=120)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return applied


def expected_state(fills: list[OrderExecuted]) -> dict[str, AccountState]:
    return {a: apply_fills(AccountState(a), [f for f in fills if f.account_id == a]) for a in ("a1", "a2")}


@pytest.mark.slow
def test_same_fills_from_many_processes_apply_once_in_delivery_order(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    fills = make_fills(120, seed=1)
    prefix = f"{key_prefix}{uuid.uuid4().hex[:6]}:"
    applied = run_workers(redis_url, prefix, fills, shuffle=False)
    assert sorted(applied) == sorted(f.trade_id for f in fills)  # every fill once, by exactly one process
    # Each process delivers in the same order and only moves on once its fill is applied (by anyone), so
    # fills are applied in list order: the state equals one sequential application, PnL included.
    assert PortfolioStore(redis_client, Keys(prefix)).snapshot() == expected_state(fills)


@pytest.mark.slow
def test_fills_in_different_orders_from_many_processes_apply_once(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    fills = make_fills(120, seed=2)
    prefix = f"{key_prefix}{uuid.uuid4().hex[:6]}:"
    applied = run_workers(redis_url, prefix, fills, shuffle=True)
    assert sorted(applied) == sorted(f.trade_id for f in fills)
    live, expected = PortfolioStore(redis_client, Keys(prefix)).snapshot(), expected_state(fills)
    # The application order is now a race, so only the order-independent parts must agree exactly.
    for account, state in expected.items():
        got = live[account]
        assert {k: p.amount for k, p in got.positions.items()} == {
            k: p.amount for k, p in state.positions.items()
        }
        assert got.balances == state.balances
        assert got.fees_paid() == state.fees_paid()
        assert got.applied_trades == state.applied_trades
