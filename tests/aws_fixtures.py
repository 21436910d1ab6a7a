"""AWS test fixtures (a pytest plugin, registered in ``tests/conftest.py``).

- ``aws_credentials``: dummy credentials and region for boto3, and no endpoint override, so that moto's
  in-process mock intercepts and nothing can reach real AWS.
- ``moto_server_url``: a real moto server on 127.0.0.1:4566 (the LocalStack edge port). One that already
  answers is reused (e.g. started by ``infra/local``); otherwise the session starts one and stops it at the end.
- ``serialize_moto_dynamodb``: moto runs DynamoDB requests concurrently without a lock, and its
  ``TransactWriteItems`` is not atomic under concurrency (it deep-copies the whole table for rollback while
  other threads write, then may restore that stale copy: we saw lost writes, duplicate positions and
  "dictionary changed size during iteration"). Real DynamoDB serialises conflicting transactions, so the
  tests make moto do the same: one DynamoDB request at a time. ``python -m tests.aws_fixtures -H host -p
  port`` is ``moto_server`` with that lock (what the session starts); a plain ``moto_server`` found already
  running on 4566 is used as is and can then fail the concurrent-writer tests spuriously.
- ``localstack_host`` / ``aws_session``: clients are built through ``localstack-client``, exactly as code
  running against LocalStack would build them.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zvt_pipeline.devtools.moto_server import command as moto_command
from zvt_pipeline.devtools.moto_server import serialize_moto_dynamodb

MOTO_HOST = "127.0.0.1"
MOTO_PORT = 4566
MOTO_START_SECONDS = 30.0

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def server_answers(url: str, timeout: float = 0.5) -> bool:
    """True if an HTTP server answers at ``url`` (any status: moto answers ``/`` with an error page)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


REPO_ROOT = Path(__file__).resolve().parents[1]


def moto_server_command(host: str = MOTO_HOST, port: int = MOTO_PORT) -> list[str]:
    """``moto_server`` with serialised DynamoDB requests (see ``zvt_pipeline.devtools.moto_server``)."""
    return moto_command(host, port)


def start_moto_server(
    log_path: Path, host: str = MOTO_HOST, port: int = MOTO_PORT
) -> subprocess.Popen[bytes]:
    """Start ``moto_server`` and wait until it answers; raise with its log if it does not."""
    url = f"http://{host}:{port}"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        moto_server_command(host, port), stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
    )
    deadline = time.monotonic() + MOTO_START_SECONDS
    while time.monotonic() < deadline:
        if server_answers(url):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop_process(proc)
    log.close()
    raise RuntimeError(f"moto_server did not answer on {url}: {log_path.read_text()[-2000:]}")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "LOCALSTACK_HOST"):
        monkeypatch.delenv(name, raising=False)
    return dict(DUMMY_CREDENTIALS)


@pytest.fixture(scope="session")
def moto_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"http://{MOTO_HOST}:{MOTO_PORT}"
    if server_answers(url):
        yield url
        return
    try:
        proc = start_moto_server(tmp_path_factory.mktemp("moto") / "moto_server.log")
    except RuntimeError:
        # Another test session may have bound the port a moment before us: use its server.
        if not server_answers(url):
            raise
        yield url
        return
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def localstack_host(moto_server_url: str) -> str:
    """``host:port`` as ``LOCALSTACK_HOST`` spells it."""
    return moto_server_url.removeprefix("http://")


@pytest.fixture
def aws_session(localstack_host: str, aws_credentials: dict[str, str]) -> Any:
    """A ``localstack_client`` session against the moto server; ``.client("dynamodb")`` etc."""
    from localstack_client.session import Session

    return Session(localstack_host=localstack_host, region_name=DUMMY_CREDENTIALS["AWS_DEFAULT_REGION"])


@pytest.fixture
def moto_in_process(aws_credentials: dict[str, str]) -> Iterator[None]:
    """moto's in-process mock, DynamoDB requests serialised (so threads behave like real DynamoDB)."""
    from moto import mock_aws

    serialize_moto_dynamodb()
    with mock_aws():
        yield
