"""The Redis AUTH token path the template sets up: ``ZVT_REDIS_AUTH_SECRET_ARN`` names a Secrets Manager
secret (moto), ``connect`` reads it once and authenticates against a real password-protected redis-server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from zvt_pipeline.config import load_settings
from zvt_pipeline.errors import ConfigError
from zvt_pipeline.redis_client import connect

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[str]:
    """A real redis-server that requires AUTH, on a free loopback port."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", TOKEN, "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url, password=TOKEN, socket_connect_timeout=0.2).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def secrets(aws_credentials: dict[str, str]) -> Iterator[object]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


@pytest.mark.parametrize("secret_string", [TOKEN, json.dumps({"password": TOKEN})])
def test_connect_reads_the_auth_token_from_the_secret(
    protected_redis: str, secrets: object, secret_string: str
) -> None:
    arn = secrets.create_secret(Name="zvt/redis-auth", SecretString=secret_string)["ARN"]  # type: ignore[attr-defined]
    settings = load_settings(redis_url=protected_redis, redis_auth_secret_arn=arn)
    client = connect(settings)
    assert client.ping()
    client.close()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(protected_redis).ping()


def test_an_unreadable_secret_names_the_variable_not_the_value(secrets: object) -> None:
    settings = load_settings(redis_url="redis://127.0.0.1:1/0", redis_auth_secret_arn="zvt/missing")
    with pytest.raises(ConfigError, match="ZVT_REDIS_AUTH_SECRET_ARN"):
        connect(settings)
    secrets.create_secret(Name="zvt/no-password", SecretString='{"user": "x"}')  # type: ignore[attr-defined]
    bad = load_settings(redis_url="redis://127.0.0.1:1/0", redis_auth_secret_arn="zvt/no-password")
    with pytest.raises(ConfigError, match="password"):
        connect(bad)
