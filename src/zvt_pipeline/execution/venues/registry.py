"""Build the configured venues and the execute step's dependencies from an ``ExecutionConfig``."""

from __future__ import annotations

from collections.abc import Mapping

import redis

from zvt_pipeline.execution.circuit import CircuitBreakers, RedisCircuitStore
from zvt_pipeline.execution.config import CcxtVenueConfig, ExecutionConfig
from zvt_pipeline.execution.venues.base import Venue
from zvt_pipeline.markets import load_markets_file
from zvt_pipeline.state.keys import Keys


def build_venues(
    config: ExecutionConfig, client: redis.Redis, keys: Keys, env: Mapping[str, str]
) -> dict[str, Venue]:
    """Venues by id, in configured order. ccxt (and boto3, for Secrets Manager keys) are imported only
    when a ccxt venue is configured."""
    venues: dict[str, Venue] = {}
    for vc in config.venues:
        venue: Venue
        if isinstance(vc, CcxtVenueConfig):
            from zvt_pipeline.execution.venues.ccxt import CcxtVenue
            from zvt_pipeline.secrets import exchange_credentials

            venue = CcxtVenue.from_config(vc, exchange_credentials(vc.exchange, config.secrets, env))
        else:
            from zvt_pipeline.execution.venues.paper import PaperVenue

            markets = load_markets_file(vc.markets_file) if vc.markets_file else None
            venue = PaperVenue(client, keys, venue_id=vc.venue_id, markets=markets, seed=vc.seed)
        venues[venue.id] = venue
    return venues


def build_breakers(config: ExecutionConfig, client: redis.Redis, keys: Keys) -> CircuitBreakers:
    store = RedisCircuitStore(client, keys) if config.circuit.shared else None
    return CircuitBreakers(config.circuit, store)
