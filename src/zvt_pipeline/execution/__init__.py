"""Routing and execution: ``order.validated`` -> ``order.routed`` -> ``order.submitted`` / fills.

Public entry points: ``ExecuteStep`` (the step), ``build_execute_step`` (wires it from config + Redis),
``Router``, ``CircuitBreakers``, and the venues in ``execution.venues``.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from zvt_pipeline.execution.circuit import CircuitBreakers
from zvt_pipeline.execution.config import ExecutionConfig
from zvt_pipeline.execution.router import Router
from zvt_pipeline.execution.step import ExecuteStep
from zvt_pipeline.state.keys import Keys


def build_execute_step(
    client: redis.Redis,
    keys: Keys,
    config: ExecutionConfig | None = None,
    env: Mapping[str, str] | None = None,
) -> ExecuteStep:
    """The execute step over the configured venues, with breaker state in Redis and reservation releases
    through ``risk.reservations``. ``env`` is only read for exchange API keys (``ZVT_<EXCHANGE>_*``)."""
    from zvt_pipeline.execution.decisions import RedisRouteDecisions
    from zvt_pipeline.execution.venues.registry import build_breakers, build_venues
    from zvt_pipeline.risk.reservations import Reservations

    config = config or ExecutionConfig()
    venues = build_venues(config, client, keys, env or {})
    return ExecuteStep(
        venues,
        release_all=Reservations(client, keys).release_all,
        breakers=build_breakers(config, client, keys),
        config=config,
        decisions=RedisRouteDecisions(client, keys),
    )


__all__ = ["CircuitBreakers", "ExecuteStep", "ExecutionConfig", "Router", "build_execute_step"]
