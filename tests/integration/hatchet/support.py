"""Shared setup of the Hatchet tests: an offline Hatchet client, a runtime on the test Redis with the real
steps (paper venue), a funded account and seeded books."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import redis

from zvt_pipeline.config import load_settings
from zvt_pipeline.eventstore.redis import RedisEventStore
from zvt_pipeline.execution.step import ExecuteStep
from zvt_pipeline.execution.venues.paper import PaperVenue
from zvt_pipeline.invoke import InProcessInvoker
from zvt_pipeline.marketdata.ingest import MarketDataIngester
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.types import utcnow
from zvt_pipeline.portfolio.store import PortfolioStore
from zvt_pipeline.risk.reservations import Reservations
from zvt_pipeline.runtime import Runtime
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.workflows.hatchet.config import HatchetConfig
from zvt_pipeline.workflows.hatchet.deps import HatchetDeps


def _b64(data: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def offline_token() -> str:
    """A syntactically valid JWT pointing at a closed port. The SDK decodes the token's claims (tenant id,
    engine addresses) when a client is built, even if it never connects; ``mock_run`` never connects.
    The signature is not checked client-side, so no real engine or secret is involved."""
    claims = {
        "sub": "00000000-0000-0000-0000-000000000000",
        "server_url": "http://127.0.0.1:9",
        "grpc_broadcast_address": "127.0.0.1:9",
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.offline"


def offline_hatchet() -> Any:
    from hatchet_sdk import ClientConfig, Hatchet

    return Hatchet(config=ClientConfig(token=offline_token()))


def make_runtime(client: redis.Redis, keys: Keys) -> Runtime:
    settings = load_settings(key_prefix=keys.prefix)
    rt = Runtime(settings=settings, client=client, keys=keys, store=RedisEventStore(client, keys=keys))
    # The real execute step with the paper venue (what ``Runtime.execute_step`` builds by default).
    rt.__dict__["execute_step"] = ExecuteStep(
        {"paper": PaperVenue(client, keys, markets=rt.markets)},
        release_all=Reservations(client, keys).release_all,
    )
    return rt


def make_deps(client: redis.Redis, keys: Keys, **kwargs: Any) -> HatchetDeps:
    rt = make_runtime(client, keys)
    return HatchetDeps(runtime=rt, invoker=InProcessInvoker(rt), config=HatchetConfig(), **kwargs)


def fund(rt: Runtime, account: str = "A", usdt: str = "100000") -> None:
    MarketDataIngester(rt.client, rt.keys).seed_books(rt.markets, seed=1)
    PortfolioStore(rt.client, rt.keys).deposit(account, "USDT", Decimal(usdt))


def market_order(coid: str, side: str = "buy", amount: str = "0.01", **kw: Any) -> OrderSpec:
    return OrderSpec(
        client_order_id=coid,
        account_id=kw.pop("account_id", "A"),
        symbol=kw.pop("symbol", "BTC/USDT"),
        side=side,  # type: ignore[arg-type]
        type="market",  # type: ignore[arg-type]
        amount=Decimal(amount),
        venue=kw.pop("venue", "paper"),
        created_at=utcnow(),
        **kw,
    )
