"""The CLI as a user runs it: real processes, a real Redis, output read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

CLI = [sys.executable, "-m", "zvt_pipeline"]


@pytest.fixture
def env(redis_url: str, key_prefix: str, redis_client: redis.Redis) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, "ZVT_KEY_PREFIX": key_prefix}


def zvt(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def worker(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [*CLI, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    yield proc
    proc.terminate()
    proc.wait(timeout=10)


def test_help_lists_every_command() -> None:
    out = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True).stdout
    for command in (
        "demo",
        "worker",
        "submit",
        "cancel",
        "status",
        "positions",
        "balances",
        "events",
        "replay",
        "dlq",
        "halt",
        "reduce",
        "resume",
        "marketdata",
        "bench",
        "hatchet",
    ):
        assert f"  {command} " in out or f"  {command}\n" in out, command


def test_demo_runs_end_to_end_and_reports_json(env: dict[str, str]) -> None:
    proc = zvt(env, "demo", "--orders", "300", "--json", timeout=180)
    report = json.loads(proc.stdout)
    runs = report["orders"]
    assert runs["orders"] == 300 and report["throughput"]["unfinished"] == 0
    assert sum(runs["outcomes"].values()) == 300
    assert runs["outcomes"].get("filled", 0) > 0 and runs["outcomes"].get("rejected", 0) > 0
    # the seeded bad intents are denied by named rules, with the numbers
    assert set(runs["rejected_by_rule"]) <= {
        "min_notional",
        "max_notional",
        "price_band",
        "amount_precision",
        "free_balance",
        "max_position",
        "max_gross_exposure",
    }
    assert report["accounts"] and all("equity" in a for a in report["accounts"].values())
    assert report["orders"]["latency_requested_to_completed"]["count"] == 300


def test_user_errors_are_one_line_without_traceback(env: dict[str, str]) -> None:
    cases = [
        (
            [
                "submit",
                "--account",
                "A",
                "--symbol",
                "BTCUSDT",
                "--side",
                "buy",
                "--amount",
                "1",
                "--price",
                "1",
            ],
            "symbol",
        ),
        (
            [
                "submit",
                "--account",
                "A",
                "--symbol",
                "BTC/USDT",
                "--side",
                "buy",
                "--amount",
                "-1",
                "--price",
                "1",
            ],
            "amount",
        ),
        (
            [
                "submit",
                "--account",
                "A",
                "--symbol",
                "BTC/USDT",
                "--side",
                "buy",
                "--amount",
                "NaN",
                "--price",
                "1",
            ],
            "amount",
        ),
        (
            [
                "submit",
                "--account",
                "A",
                "--symbol",
                "BTC/USDT",
                "--side",
                "buy",
                "--type",
                "limit",
                "--amount",
                "1",
            ],
            "price",
        ),
        (["status", "no-such-run"], "run_id"),
        (["cancel", "no-such-order", "--account", "A"], "client_order_id"),
        (["worker", "--steps", "risk,bogus"], "steps"),
    ]
    for args, field in cases:
        proc = zvt(env, *args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {field}"), (args, proc.stderr)
    # nothing was written by any of them
    assert zvt(env, "events", "--json").stdout.strip() == ""


def test_bad_config_names_the_variable(env: dict[str, str]) -> None:
    proc = zvt({**env, "ZVT_EVENT_STORE": "postgres"}, "events", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ZVT_EVENT_STORE:")


def submit_json(env: dict[str, str], args: str) -> dict[str, Any]:
    """`zvt-pipeline submit --account A <args> --wait --json`, parsed."""
    result: dict[str, Any] = json.loads(
        zvt(env, "submit", "--account", "A", *args.split(), "--wait", "--json").stdout
    )
    return result


def test_order_lifecycle_through_the_cli(env: dict[str, str], worker: subprocess.Popen[str]) -> None:
    zvt(env, "marketdata", "--count", "2", "--interval", "0")
    zvt(env, "deposit", "--account", "A", "--amount", "100000")
    filled = submit_json(env, "--symbol BTC/USDT --side buy --type market --amount 0.01")
    assert filled["status"]["outcome"] == "filled"
    assert filled["events"][-3:] == ["order.executed", "position.updated", "workflow.completed"]
    rest = json.loads(
        zvt(
            env,
            "submit",
            "--account",
            "A",
            "--symbol",
            "ETH/USDT",
            "--side",
            "buy",
            "--amount",
            "0.5",
            "--price",
            "2900",
            "--client-order-id",
            "rest-1",
            "--wait",
            "--json",
        ).stdout
    )
    assert rest["status"]["outcome"] == "open"
    reserved = json.loads(zvt(env, "balances", "--json").stdout)[0]["reserved"]
    assert reserved != "0"
    canceled = json.loads(zvt(env, "cancel", "rest-1", "--account", "A", "--json").stdout)
    assert canceled["remaining"] == "0.5"
    assert json.loads(zvt(env, "balances", "--json").stdout)[0]["reserved"] in (
        "0",
        "0E-18",
        "0.000000000000000000",
    )
    zvt(env, "halt", "--account", "A", "--reason", "e2e")
    halted = submit_json(env, "--symbol BTC/USDT --side buy --type market --amount 0.01")
    assert halted["status"]["outcome"] == "rejected" and halted["status"]["result_rule"] == "trading_state"
    zvt(env, "resume", "--account", "A")
    positions = json.loads(zvt(env, "positions", "--json").stdout)
    assert [(p["symbol"], p["amount"]) for p in positions] == [("BTC/USDT", "0.01")]
    status = json.loads(zvt(env, "status", filled["run_id"], "--json").stdout)
    assert status["workflow"]["outcome"] == "filled" and len(status["events"]) == 8
    verify = json.loads(zvt(env, "replay", "--verify", "--json").stdout)
    assert verify["differences"] == [] and verify["runs"] == 3


def wait_for_dead_letters(env: dict[str, str], timeout: float = 20) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        listed: list[dict[str, object]] = json.loads(zvt(env, "dlq", "list", "--json").stdout)
        if listed or time.monotonic() > deadline:
            return listed
        time.sleep(0.2)


def test_poison_message_goes_to_the_dlq_and_redrive_brings_it_back(
    env: dict[str, str], redis_client: redis.Redis, key_prefix: str, worker: subprocess.Popen[str]
) -> None:
    # A trigger whose payload fails validation: terminal, dead-lettered at once.
    redis_client.xadd(f"{key_prefix}steps:risk", {"r": "run-poison", "t": b'[{"type": "order.requested"}]'})
    listed = wait_for_dead_letters(env)
    assert (
        len(listed) == 1 and listed[0]["error"] == "invalid_message" and listed[0]["run_id"] == "run-poison"
    )
    shown = json.loads(zvt(env, "dlq", "show", str(listed[0]["id"]), "--json").stdout)
    assert "payload" in shown["detail"] or "event_id" in shown["detail"]
    moved = json.loads(zvt(env, "dlq", "redrive", "--step", "risk", "--json").stdout)
    assert moved == {"risk": 1}
    # still poison: it comes back to the DLQ, nothing else is written
    assert len(wait_for_dead_letters(env)) == 1
