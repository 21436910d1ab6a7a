"""Many processes reserving against one account at once: exactly the orders the money covers succeed.

The amounts are chosen so that float arithmetic would admit one order too many: 9 reservations of
7.000000000000000001 fit in a balance of 70.000000000000000009, a 10th does not (as floats, both numbers
are 7.0 and 70.0, and 10 would fit).
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis

from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import Reservation
from zvt_pipeline.messages.types import OrderType, Side
from zvt_pipeline.risk.reservations import RateLimit, Reservations
from zvt_pipeline.state.keys import Keys

pytestmark = pytest.mark.slow

D = Decimal
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
PROCESSES = 8
ORDERS_EACH = 4


def _worker(
    url: str, prefix: str, proc: int, amount: str, rate: tuple[int, float] | None, barrier: Any, out: Any
) -> None:
    client = redis.Redis.from_url(url)
    rsv = Reservations(client, Keys(prefix), max_attempts=10_000)
    orders = [
        OrderSpec(
            client_order_id=f"p{proc}-{n}",
            account_id="acc",
            symbol="BTC/USDT",
            side=Side.BUY,
            type=OrderType.LIMIT,
            amount=D("0.0001"),
            price=D("60000"),
            created_at=NOW,
        )
        for n in range(ORDERS_EACH)
    ]
    limit = RateLimit(*rate) if rate else None
    barrier.wait()
    results = []
    for o in orders:
        r = rsv.reserve(
            o, Reservation(currency="USDT", amount=D(amount)), f"run-{o.client_order_id}", NOW, limit
        )
        results.append((o.client_order_id, r.ok, r.rule))
    out.put(results)
    client.close()


def _race(
    url: str, keys: Keys, amount: str, rate: tuple[int, float] | None = None
) -> list[tuple[str, bool, str]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(url, keys.prefix, p, amount, rate, barrier, out))
        for p in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [r for _ in procs for r in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def test_exactly_the_affordable_orders_succeed(redis_url: str, redis_client: redis.Redis, keys: Keys) -> None:
    redis_client.hset(keys.balance("acc"), "USDT", "70.000000000000000009")
    results = _race(redis_url, keys, "7.000000000000000001")
    winners = [coid for coid, ok, _ in results if ok]
    assert len(results) == PROCESSES * ORDERS_EACH
    assert len(winners) == 9
    assert {rule for _, ok, rule in results if not ok} == {"free_balance"}
    total = D(redis_client.hget(keys.reserved("acc"), "USDT").decode())
    assert total == 9 * D("7.000000000000000001") == D("63.000000000000000009")
    assert D("70.000000000000000009") - total >= 0
    # one reservation hash per winner, none for the losers
    rsv = Reservations(redis_client, keys)
    assert sum(rsv.outstanding(f"p{p}-{n}") for p in range(PROCESSES) for n in range(ORDERS_EACH)) == total


def test_rate_limit_holds_across_processes(redis_url: str, redis_client: redis.Redis, keys: Keys) -> None:
    redis_client.hset(keys.balance("acc"), "USDT", "1000000")
    results = _race(redis_url, keys, "1", rate=(7, 60.0))
    assert sum(ok for _, ok, _ in results) == 7
    assert {rule for _, ok, rule in results if not ok} == {"rate_limit"}
    assert redis_client.zcard(keys.submit_rate("acc")) == 7
    assert redis_client.hget(keys.reserved("acc"), "USDT") == b"7"
