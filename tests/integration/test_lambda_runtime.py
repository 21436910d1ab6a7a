"""The risk handler under awslambdaric's real runtime loop, against a Lambda Runtime API served by the test.

``python -m awslambdaric app.lambda_handler`` (cwd ``functions/risk``) is exactly what the Lambda Python base
image runs. The test plays the Lambda service: it serves ``GET /2018-06-01/runtime/invocation/next`` with the
Lambda headers and records what the runtime posts to ``/response`` and ``/error``. It also listens on UDP as
the X-Ray daemon (tracing is on, as in Lambda), and greps everything the process wrote for a fake API key.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from tests.integration.handlers_support import (
    FAKE_API_KEY,
    FUNCTIONS_DIR,
    REPO_ROOT,
    context,
    fresh,
    load_event,
    seed_world,
)
from zvt_pipeline.state.keys import Keys

API = "/2018-06-01/runtime"
WAIT_S = 60.0


@dataclass
class RuntimeApi:
    """The Lambda service's side of the Runtime API: a queue of invocations in, the posts out."""

    invocations: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    init_errors: list[dict[str, Any]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    posted: threading.Condition = field(default_factory=threading.Condition)

    def invoke(self, event: Any) -> str:
        request_id = str(uuid.uuid4())
        self.invocations.put((request_id, json.dumps(event).encode()))
        return request_id

    def wait_for(self, request_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.posted:
            while not all(r in self.results for r in request_ids) and not self.init_errors:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.posted.wait(left)

    def record(self, request_id: str, result: dict[str, Any]) -> None:
        with self.posted:
            self.results[request_id] = result
            self.posted.notify_all()


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The runtime's pending GET /next is cut when the test stops the process: expected, not an error.
        return


def make_server(api: RuntimeApi) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path != f"{API}/invocation/next":
                self._reply(404)
                return
            while not api.done.is_set():
                try:
                    request_id, body = api.invocations.get(timeout=0.1)
                except queue.Empty:
                    continue
                deadline_ms = int((time.time() + 30) * 1000)
                self._reply(
                    200,
                    body,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:zvt-risk",
                        "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=1",
                    },
                )
                return
            self._reply(503)  # the test is over; the process is about to be stopped

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = self.path.removeprefix(f"{API}/").split("/")
            if parts[:2] == ["init", "error"]:
                api.init_errors.append({"body": body.decode(errors="replace"), "headers": dict(self.headers)})
                with api.posted:
                    api.posted.notify_all()
            elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                api.record(
                    parts[1],
                    {
                        "kind": parts[2],
                        "body": json.loads(body) if body else None,
                        "error_type_header": self.headers.get("Lambda-Runtime-Function-Error-Type"),
                    },
                )
            else:
                self._reply(404)
                return
            self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

    return QuietServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def runtime_api() -> Iterator[tuple[RuntimeApi, int]]:
    api = RuntimeApi()
    server = make_server(api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api, server.server_address[1]
    api.done.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def xray_daemon() -> Iterator[tuple[socket.socket, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock, sock.getsockname()[1]
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535).decode(errors="replace"))
        except TimeoutError:
            return out


def test_risk_handler_under_awslambdaric(
    runtime_api,
    xray_daemon,
    redis_url: str,
    key_prefix: str,
    redis_client: redis.Redis,
    keys: Keys,
    monkeypatch,
    tmp_path,
):
    pytest.importorskip("awslambdaric")
    pytest.importorskip("runtime_client", reason="awslambdaric's native runtime client is not built")
    api, port = runtime_api
    udp, udp_port = xray_daemon
    seed_world(redis_client, keys)

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ZVT_", "AWS_", "POWERTOOLS_"))},
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
        # What the Lambda service sets for a function (the context and powertools read these).
        "LAMBDA_TASK_ROOT": str(FUNCTIONS_DIR / "risk"),
        "AWS_LAMBDA_FUNCTION_NAME": "zvt-risk",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/zvt-risk",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/01/[$LATEST]test",
        "AWS_REGION": "us-east-1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{udp_port}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        # What template.yaml sets, pointed at the test's Redis.
        "REDIS_URL": redis_url,
        "ZVT_KEY_PREFIX": key_prefix,
        "POWERTOOLS_SERVICE_NAME": "zvt-risk",
        "POWERTOOLS_METRICS_NAMESPACE": "ZvtPipelineTest",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",
        "ZVT_BINANCE_API_KEY": FAKE_API_KEY,
    }
    good = fresh(load_event("order_requested"))
    bad = load_event("bad_negative_amount")
    leaky = load_event("bad_unknown_symbol")
    leaky["payload"]["order"]["symbol"] = f"{FAKE_API_KEY}/USDT"  # a key pasted into the wrong field
    batch = fresh(load_event("sqs_batch_one_bad"))
    ids = [api.invoke(good), api.invoke(bad), api.invoke(leaky), api.invoke(batch)]

    log_path = tmp_path / "runtime.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", "app.lambda_handler"],
            cwd=FUNCTIONS_DIR / "risk",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            api.wait_for(ids, WAIT_S)
        finally:
            api.done.set()
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    output = log_path.read_text(errors="replace")
    assert not api.init_errors, f"the runtime could not load the handler: {api.init_errors}\n{output[-3000:]}"
    assert all(r in api.results for r in ids), f"missing results; runtime output:\n{output[-3000:]}"

    # 1. A valid order: /response with {"events": [...]}, the same answer the handler gives in-process
    #    (the idempotency record makes a second call return the first answer), and the events stored.
    ok = api.results[ids[0]]
    assert ok["kind"] == "response"
    assert [e["type"] for e in ok["body"]["events"]] == ["order.validated"]
    import functions.risk.app as app

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ZVT_KEY_PREFIX", key_prefix)
    app.reset()
    try:
        assert app.lambda_handler(good, context("risk")) == ok["body"]
    finally:
        app.reset()

    # 2. Bad input: /error with errorType InvalidMessage (the invoke seam maps it to a terminal error).
    err = api.results[ids[1]]
    assert err["kind"] == "error"
    assert err["body"]["errorType"] == "InvalidMessage"
    assert err["body"]["errorMessage"].startswith("payload.order.amount:")
    if err["error_type_header"] is not None:
        assert err["error_type_header"] == "InvalidMessage"

    # 3. A secret inside bad input is masked in the error the runtime reports.
    leak = api.results[ids[2]]
    assert leak["kind"] == "error" and leak["body"]["errorType"] == "InvalidMessage"
    assert "***/USDT" in leak["body"]["errorMessage"]

    # 4. An SQS batch: partial failure reported per record.
    sqs = api.results[ids[3]]
    assert sqs["kind"] == "response"
    assert sqs["body"]["batchItemFailures"] == [{"itemIdentifier": batch["Records"][1]["messageId"]}]

    # Structured logs with the workflow run id as correlation id; EMF metrics; X-Ray segments sent.
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    ran = [rec for rec in lines if rec.get("message") == "step ran"]
    assert any(rec.get("correlation_id") == "run-lam-1" for rec in ran)
    assert any(
        "_aws" in rec and rec["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ZvtPipelineTest"
        for rec in lines
    )
    segments = drain(udp)
    assert any('"## risk"' in s for s in segments), segments[:3]

    # The fake key: logged nowhere (debug logs and the logged events included), sent nowhere.
    everything = output + json.dumps(api.results) + "".join(segments)
    assert FAKE_API_KEY not in everything
    assert "***/USDT" in output
