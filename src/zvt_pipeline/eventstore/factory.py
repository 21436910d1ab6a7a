"""Build the configured event store. Optional drivers (boto3) are imported only when chosen."""

from __future__ import annotations

import redis

from zvt_pipeline.config import Settings
from zvt_pipeline.eventstore.base import EventStore
from zvt_pipeline.state.keys import Keys


def create_event_store(settings: Settings, client: redis.Redis | None = None) -> EventStore:
    if settings.event_store == "dynamodb":
        from zvt_pipeline.eventstore.dynamodb import DynamoDBEventStore

        return DynamoDBEventStore.from_settings(settings)
    from zvt_pipeline.eventstore.redis import RedisEventStore
    from zvt_pipeline.redis_client import connect

    return RedisEventStore(
        client or connect(settings), keys=Keys(settings.key_prefix), max_event_bytes=settings.max_event_bytes
    )
