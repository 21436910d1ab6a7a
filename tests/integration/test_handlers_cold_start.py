"""Each handler imported in a fresh process, as a cold start: what it imports and how long it takes.

The risk and portfolio handlers must not import ccxt or hatchet_sdk, neither at import nor while building
their dependencies on the first invocation. Import and first-call times are printed (``pytest -s``), never
asserted. Also ``zvt-pipeline invoke`` end to end, with a fake API key in the environment that must appear
in no output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import redis

from tests.integration.handlers_support import (
    FAKE_API_KEY,
    REPO_ROOT,
    fresh,
    load_event,
    seed_world,
)
from zvt_pipeline.state.keys import Keys

HEAVY = ("ccxt", "hatchet_sdk")
SAMPLES = {"risk": "order_requested", "execute": "order_validated", "portfolio": "order_executed"}

COLD_START = """
import json, sys, time
heavy = {heavy!r}
t0 = time.perf_counter()
import functions.{step}.app as app
t1 = time.perf_counter()
after_import = [m for m in heavy if m in sys.modules]
from zvt_pipeline.local_invoke import LocalContext
try:
    out = app.lambda_handler(json.loads(sys.argv[1]), LocalContext(function_name="zvt-{step}"))
    types = [e["type"] for e in out["events"]]
except Exception as exc:
    types = ["error: " + type(exc).__name__ + ": " + str(exc)]
t2 = time.perf_counter()
after_call = [m for m in heavy if m in sys.modules]
print("RESULT " + json.dumps({{"import_ms": (t1 - t0) * 1000, "first_call_ms": (t2 - t1) * 1000,
    "after_import": after_import, "after_call": after_call, "types": types}}))
"""


def base_env(redis_url: str, key_prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZVT_", "POWERTOOLS_"))}
    env.update(
        REDIS_URL=redis_url,
        ZVT_KEY_PREFIX=key_prefix,
        ZVT_BINANCE_API_KEY=FAKE_API_KEY,
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")]),
    )
    return env


def cold_start(step: str, event: Any, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", COLD_START.format(step=step, heavy=HEAVY), json.dumps(event)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    assert FAKE_API_KEY not in proc.stdout + proc.stderr
    return result


@pytest.mark.parametrize("step", ["risk", "portfolio", "execute"])
def test_cold_start_imports(
    step: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, keys: Keys
):
    seed_world(redis_client, keys)
    result = cold_start(step, fresh(load_event(SAMPLES[step])), base_env(redis_url, key_prefix))
    print(
        f"\n[cold start] {step}: import {result['import_ms']:.0f} ms, first invocation (dependencies + run) "
        f"{result['first_call_ms']:.0f} ms, heavy modules loaded: {result['after_call'] or 'none'}"
    )
    assert not result["types"][0].startswith("error"), result["types"]
    if step in ("risk", "portfolio"):
        assert result["after_import"] == [] and result["after_call"] == []


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zvt_pipeline", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_invoke_runs_the_handler_and_prints_the_answer(redis_url, key_prefix, redis_client, keys):
    proc = run_cli(
        ["invoke", "portfolio", "--event", "tests/events/order_executed.json"],
        base_env(redis_url, key_prefix),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout)  # stdout is the answer only; the function's logs went to stderr
    assert [e["type"] for e in answer["events"]] == ["position.updated", "workflow.completed"]
    assert '"message":"step ran"' in proc.stderr


def test_cli_invoke_reports_a_function_error_with_secrets_masked(
    redis_url, key_prefix, redis_client, keys, tmp_path
):
    event = load_event("bad_unknown_symbol")
    event["payload"]["order"]["symbol"] = f"{FAKE_API_KEY}/USDT"
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(event))
    env = base_env(redis_url, key_prefix) | {
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",
    }
    before = sorted(redis_client.scan_iter(match=f"{key_prefix}*"))
    proc = run_cli(["invoke", "risk", "--event", str(path)], env)
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["errorType"] == "InvalidMessage"
    assert error["errorMessage"].startswith("payload.order.symbol: unknown symbol '***/USDT'")
    assert FAKE_API_KEY not in proc.stdout + proc.stderr
    assert "***/USDT" in proc.stderr  # the logged event and the warning, masked
    assert sorted(redis_client.scan_iter(match=f"{key_prefix}*")) == before


def test_cli_invoke_refuses_a_body_that_is_not_json_like_the_lambda_service(redis_url, key_prefix):
    proc = run_cli(
        ["invoke", "risk", "--event", "tests/events/bad_malformed.json"], base_env(redis_url, key_prefix)
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["errorType"] == "InvalidRequestContentException"
