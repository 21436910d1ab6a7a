"""infra/local/up and down, run as a user runs them (the bash scripts), on free ports so that a LocalStack
or moto_server on 4566 is never touched."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UP = REPO / "infra" / "local" / "up"
DOWN = REPO / "infra" / "local" / "down"

pytestmark = pytest.mark.skipif(
    not (
        Path("/usr/bin/redis-server").exists()
        or any((Path(d) / "redis-server").exists() for d in os.environ.get("PATH", "").split(os.pathsep))
    ),
    reason="redis-server is not installed (apt-get install redis-server)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("ZVT_LOCAL_")}
    env["ZVT_PYTHON"] = sys.executable
    proc = subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    return env


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[list[str], Path, int]]:
    """Arguments for up/down with a private state dir and free AWS port; always brought down."""
    state = tmp_path / "state"
    port = free_port()
    args = ["--state-dir", str(state), "--aws-port", str(port)]
    yield args, state, port
    run(DOWN, "--state-dir", str(state))


def test_up_bootstraps_the_template_and_down_stops_what_it_started(
    stack: tuple[list[str], Path, int],
) -> None:
    import boto3
    import redis

    args, state, port = stack
    first = run(UP, *args, "--start-redis")
    env = parse_exports(first.stdout)
    assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
    assert env["LOCALSTACK_HOST"] == f"127.0.0.1:{port}"
    assert env["ZVT_EVENT_STORE"] == "dynamodb" and env["ZVT_DYNAMODB_TABLE"] == "zvt-events"
    assert (state / "env").read_text() == first.stdout
    assert redis.Redis.from_url(env["REDIS_URL"]).ping()
    pids = {name: int((state / f"{name}.pid").read_text()) for name in ("moto", "redis")}
    assert all(pid_alive(pid) for pid in pids.values())

    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    dynamodb = session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"])
    table = dynamodb.describe_table(TableName="zvt-events")["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by_correlation"]
    secrets = session.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"])
    assert secrets.describe_secret(SecretId="zvt/exchange/binance")["Name"] == "zvt/exchange/binance"
    sqs = session.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
    assert sqs.get_queue_url(QueueName="zvt-async-failures")["QueueUrl"]

    # Idempotent: a second up reuses both servers and keeps the data and the secret's value.
    secrets.put_secret_value(SecretId="zvt/exchange/binance", SecretString='{"apiKey": "k", "secret": "s"}')
    second = run(UP, *args, "--start-redis")
    assert parse_exports(second.stdout) == env
    assert {name: int((state / f"{name}.pid").read_text()) for name in pids} == pids
    assert "already running" in second.stderr
    assert (
        secrets.get_secret_value(SecretId="zvt/exchange/binance")["SecretString"]
        == '{"apiKey": "k", "secret": "s"}'
    )

    run(DOWN, "--state-dir", str(state))
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not port_open(port)
    assert not (state / "moto.pid").exists() and not (state / "redis.pid").exists()
    again = run(DOWN, "--state-dir", str(state))
    assert "nothing of ours was running" in again.stderr


def test_down_leaves_servers_that_up_found_running(
    stack: tuple[list[str], Path, int], tmp_path: Path
) -> None:
    args, _, port = stack
    owner = run(UP, *args)  # starts moto_server, uses the machine's Redis (or starts one if 6379 is silent)
    other_state = tmp_path / "other"
    borrower = run(UP, "--state-dir", str(other_state), "--aws-port", str(port))
    assert "started elsewhere" in borrower.stderr
    assert (
        parse_exports(borrower.stdout)["AWS_ENDPOINT_URL"] == parse_exports(owner.stdout)["AWS_ENDPOINT_URL"]
    )
    stopped = run(DOWN, "--state-dir", str(other_state))
    assert "nothing of ours was running" in stopped.stderr
    assert port_open(port)


def test_the_event_store_runs_on_the_local_stack(
    stack: tuple[list[str], Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The printed env is all the code needs: Settings -> localstack-client -> the bootstrapped table."""
    from zvt_pipeline.config import Settings
    from zvt_pipeline.eventstore.base import NO_STREAM
    from zvt_pipeline.eventstore.dynamodb import DynamoDBEventStore
    from zvt_pipeline.messages.envelope import Envelope
    from zvt_pipeline.messages.events import PriceUpdated

    args, _, _ = stack
    env = parse_exports(run(UP, *args).stdout)
    for name in [n for n in os.environ if n.startswith("ZVT_") or n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = DynamoDBEventStore.from_settings(Settings())
    stream = f"order-local-{os.getpid()}-{port_suffix(env)}"
    event = Envelope.new(
        PriceUpdated(venue="paper", symbol="ETH/USDT", price=Decimal("3000.25")),
        stream_id=stream,
        correlation_id="r",
    )
    store.append(stream, [event], expected_version=NO_STREAM)
    assert store.read(stream)[0].payload.price == Decimal("3000.25")  # type: ignore[attr-defined]


def port_suffix(env: dict[str, str]) -> str:
    return env["LOCALSTACK_HOST"].rsplit(":", 1)[-1]
