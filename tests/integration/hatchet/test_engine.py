"""Against a real Hatchet engine (``infra/hatchet/``): 100 orders through ``trading.place_order`` and a
rebalance end to end, checked in the event store. Skipped unless ``HATCHET_CLIENT_TOKEN`` is set."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from tests.integration.hatchet.support import fund, make_runtime, market_order
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.workflows.hatchet.models import PlaceOrderInput, RebalanceInput
from zvt_pipeline.workflows.submit import Workflows

pytestmark = pytest.mark.skipif(
    not os.environ.get("HATCHET_CLIENT_TOKEN"),
    reason="needs a Hatchet engine: set HATCHET_CLIENT_TOKEN (see infra/hatchet/README.md)",
)

WORKER = """
import sys
from zvt_pipeline.config import load_settings
from zvt_pipeline.workflows.hatchet.client import make_hatchet
from zvt_pipeline.workflows.hatchet.worker import create_worker
create_worker(make_hatchet(), load_settings(redis_url=sys.argv[1], key_prefix=sys.argv[2]), slots=50).start()
"""


@pytest.fixture
def worker(redis_url: str, key_prefix: str) -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, redis_url, key_prefix])
    time.sleep(5)  # registration with the engine
    yield
    proc.terminate()
    proc.wait(timeout=30)


def wait_until(check, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for the engine"
        time.sleep(0.5)


def test_100_orders_through_the_engine(redis_client: redis.Redis, keys: Keys, worker: None) -> None:
    from zvt_pipeline.workflows.hatchet.client import make_hatchet
    from zvt_pipeline.workflows.hatchet.worker import build_workflows

    rt = make_runtime(redis_client, keys)
    fund(rt, usdt="1000000")
    po = build_workflows(make_hatchet()).place_order.workflow
    inputs = [
        PlaceOrderInput(order=market_order(f"e{n}", amount="0.001"), run_id=f"run-e{n}") for n in range(100)
    ]

    async def start_all() -> None:
        await asyncio.gather(*(po.aio_run(i, wait_for_result=False) for i in inputs))

    asyncio.run(start_all())
    wf = Workflows(rt.bus, rt.store)
    wait_until(lambda: all((wf.status(i.run_id) or {}).get("status") == "completed" for i in inputs))
    for i in inputs:
        types = [e.type for e in wf.events(i.workflow_run_id)]
        assert types.count("order.executed") == 1 and types[-1] == "workflow.completed"


def test_rebalance_end_to_end(redis_client: redis.Redis, keys: Keys, worker: None) -> None:
    from zvt_pipeline.workflows.hatchet.client import make_hatchet
    from zvt_pipeline.workflows.hatchet.worker import build_workflows

    rt = make_runtime(redis_client, keys)
    fund(rt)
    rb = build_workflows(make_hatchet()).rebalance.workflow
    result = asyncio.run(
        rb.aio_run(RebalanceInput(account_id="A", targets={"BTC/USDT": Decimal("0.4")}, run_id="rb-e2e"))
    )
    assert result["record_result"]["status"] == "completed"
    (event,) = [e for e in rt.store.read("account-A") if e.type == "portfolio.rebalanced"]
    assert abs(event.payload.achieved["BTC/USDT"] - Decimal("0.4")) < Decimal("0.01")
