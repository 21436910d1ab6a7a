"""Helpers for the Lambda handler tests: sample events, prepared state, Redis snapshots, and a stand-in
for the Lambda service's ``Invoke`` API that runs a handler in this process (for ``LambdaInvoker``)."""

from __future__ import annotations

import copy
import io
import json
import traceback
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from zvt_pipeline.local_invoke import LocalContext
from zvt_pipeline.messages.events import BookLevel, OrderBookUpdated
from zvt_pipeline.state.keys import Keys

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "tests" / "events"
FUNCTIONS_DIR = REPO_ROOT / "functions"
STEPS = ("risk", "execute", "portfolio")
ACCOUNT = "acc-lambda"
FAKE_API_KEY = "ZVTFAKEAPIKEY7Q2W9X"
"""Set as ``ZVT_BINANCE_API_KEY``; must never appear in any log line or error."""


def event_text(name: str) -> str:
    return (EVENTS_DIR / f"{name}.json").read_text()


def load_event(name: str) -> Any:
    return json.loads(event_text(name))


def _stamp(envelope: dict[str, Any], now: str) -> None:
    order = envelope.get("payload", {}).get("order")
    if isinstance(order, dict) and "created_at" in order:
        order["created_at"] = now


def fresh(event: Any) -> Any:
    """The sample with every order's ``created_at`` set to now (samples are fixed in time; risk rejects
    intents older than their TTL)."""
    event = copy.deepcopy(event)
    now = datetime.now(UTC).isoformat()
    if "Records" in event:
        for record in event["Records"]:
            if "body" in record:
                body = json.loads(record["body"])
                _stamp(body, now)
                record["body"] = json.dumps(body)
    elif "triggers" in event:
        for trigger in event["triggers"]:
            _stamp(trigger, now)
    else:
        _stamp(event, now)
    return event


def seed_world(client: redis.Redis, keys: Keys) -> None:
    """Cash, a mark and a paper order book for BTC/USDT: enough for the samples to validate and fill
    (the sample limit buy at 60000 crosses the best ask)."""
    client.hset(keys.balance(ACCOUNT), mapping={"USDT": "100000"})
    client.hset(keys.marks, "paper|BTC/USDT", "60000")
    book = OrderBookUpdated(
        venue="paper",
        symbol="BTC/USDT",
        bids=(BookLevel(price=Decimal("59990"), amount=Decimal("5")),),
        asks=(BookLevel(price=Decimal("60000"), amount=Decimal("5")),),
    )
    client.set(keys.book("paper", "BTC/USDT"), book.model_dump_json())


def snapshot(client: redis.Redis, prefix: str) -> dict[bytes, bytes | None]:
    """Every key under the prefix with its serialized value: equal snapshots = nothing was written."""
    return {key: client.dump(key) for key in sorted(client.scan_iter(match=f"{prefix}*", count=1000))}


def context(step: str) -> LocalContext:
    return LocalContext(function_name=f"zvt-{step}")


class InProcessLambdaService:
    """``lambda.invoke`` for ``LambdaInvoker``: runs the named handler here and answers as the service
    does (``Payload`` stream; ``FunctionError: Unhandled`` with the runtime's error document)."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        self.handlers = handlers
        self.calls: list[dict[str, Any]] = []

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "RequestResponse"
        event = json.loads(Payload)
        self.calls.append({"function": FunctionName, "event": event})
        try:
            body = self.handlers[FunctionName](event, LocalContext(function_name=FunctionName))
        except Exception as exc:
            error = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": io.BytesIO(json.dumps(error).encode()),
            }
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(body).encode())}
