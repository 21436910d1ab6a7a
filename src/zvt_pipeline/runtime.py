"""Dependencies built once per process (a CLI run, a worker, a Lambda cold start, a Hatchet worker).

Everything heavy is created lazily, so a Lambda that only needs the risk step never imports ccxt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import redis

from zvt_pipeline.config import Settings, get_settings
from zvt_pipeline.eventstore.base import EventStore
from zvt_pipeline.eventstore.factory import create_event_store
from zvt_pipeline.markets import Market, load_markets_file
from zvt_pipeline.redis_client import connect
from zvt_pipeline.state.keys import Keys

if TYPE_CHECKING:
    from zvt_pipeline.bus.streams import StreamBus
    from zvt_pipeline.execution.step import ExecuteStep
    from zvt_pipeline.step import Step


@dataclass
class Runtime:
    settings: Settings
    client: redis.Redis
    keys: Keys
    store: EventStore
    markets: dict[str, Market] = field(default_factory=load_markets_file)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> Runtime:
        settings = settings or get_settings()
        client = connect(settings)
        return cls(
            settings=settings,
            client=client,
            keys=Keys(settings.key_prefix),
            store=create_event_store(settings, client),
            **kwargs,
        )

    @cached_property
    def bus(self) -> StreamBus:
        from zvt_pipeline.bus.streams import StreamBus

        return StreamBus(self.client, self.keys)

    @cached_property
    def risk_step(self) -> Step:
        from zvt_pipeline.risk.config import RiskConfigSource
        from zvt_pipeline.risk.step import RiskStep

        source = RiskConfigSource(self.client, self.keys)
        return RiskStep(self.client, self.keys, source, self.markets)

    @cached_property
    def execute_step(self) -> ExecuteStep:
        from zvt_pipeline.execution import build_execute_step
        from zvt_pipeline.execution.config import ExecutionConfig

        # The composition root is where the environment is read (venues, exchange keys), once.
        return build_execute_step(self.client, self.keys, ExecutionConfig.from_env(self.env), self.env)

    @cached_property
    def portfolio_step(self) -> Step:
        from zvt_pipeline.portfolio.step import PortfolioStep

        return PortfolioStep(self.client, self.keys)

    def step(self, name: str) -> Step:
        steps = {
            "risk": lambda: self.risk_step,
            "execute": lambda: self.execute_step,
            "portfolio": lambda: self.portfolio_step,
        }
        try:
            return steps[name]()
        except KeyError:
            raise ValueError(f"unknown step {name!r} (risk, execute, portfolio)") from None
