"""The event store contract on the Redis backend, against a real Redis server."""

from __future__ import annotations

import functools

import pytest
import redis

from tests.contract.eventstore_contract import EventStoreContract, StoreFactory
from zvt_pipeline.eventstore.base import EventStore
from zvt_pipeline.eventstore.redis import RedisEventStore
from zvt_pipeline.state.keys import Keys


def make_redis_store(url: str, prefix: str) -> EventStore:
    return RedisEventStore(redis.Redis.from_url(url), keys=Keys(prefix))


class TestRedisEventStore(EventStoreContract):
    @pytest.fixture
    def store_factory(self, redis_url: str, key_prefix: str, redis_client: redis.Redis) -> StoreFactory:
        return functools.partial(make_redis_store, redis_url, key_prefix)
