"""Run a step function's Lambda handler locally, the way the Lambda runtime would, without Docker.

What the runtime does and this module repeats: import ``app.py`` from the function's directory with that
directory first on ``sys.path`` (handler ``app.lambda_handler``), parse the request body as JSON, call the
handler with a context object (request id, function name/ARN, memory, a deadline), serialise the answer as
JSON, and turn an exception into ``{"errorType", "errorMessage", "stackTrace"}``. Used by
``zvt-pipeline invoke STEP --event FILE``.

The function's own output (JSON log lines, EMF metrics) goes to stderr here, so that stdout carries only
the answer (``zvt-pipeline invoke ... > answer.json``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from zvt_pipeline.errors import ConfigError

STEPS = ("risk", "execute", "portfolio")
Handler = Callable[[Any, Any], Any]


@dataclass
class LocalContext:
    """The attributes and method of ``awslambdaric``'s ``LambdaContext`` that handlers and powertools use."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_s: float = 30.0
    function_version: str = "$LATEST"
    region: str = "us-east-1"
    account_id: str = "000000000000"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{time.strftime('%Y/%m/%d')}/[{self.function_version}]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class InvokeResult:
    response: Any
    """The handler's answer as the runtime would return it (JSON round trip); ``None`` on error."""
    error: dict[str, Any] | None
    """``{"errorType", "errorMessage", "stackTrace"}`` when the handler raised (a function error)."""
    duration_ms: float
    request_id: str

    @property
    def ok(self) -> bool:
        return self.error is None


def find_functions_dir(start: Path | None = None) -> Path:
    """``functions/`` in the current directory or the nearest parent that has one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "functions"
        if all((candidate / s / "app.py").is_file() for s in STEPS):
            return candidate
    raise ConfigError(
        f"--functions-dir: no functions/<step>/app.py in {here} or its parents (run from the repository, "
        "or pass --functions-dir)"
    )


_loaded: dict[Path, ModuleType] = {}


def load_handler(step: str, functions_dir: Path | None = None) -> Handler:
    """Import ``functions/<step>/app.py`` once (a cold start) and return its ``lambda_handler``."""
    if step not in STEPS:
        raise ConfigError(f"step: unknown step function {step!r} ({', '.join(STEPS)})")
    app = (functions_dir or find_functions_dir()) / step / "app.py"
    if not app.is_file():
        raise ConfigError(f"--functions-dir: {app} does not exist")
    app = app.resolve()
    module = _loaded.get(app)
    if module is None:
        # The runtime imports "app" with the function's directory first on sys.path; three functions share
        # that module name, so each gets a unique one here.
        spec = importlib.util.spec_from_file_location(f"zvt_lambda_{step}_app", app)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(app.parent))
        try:
            with contextlib.redirect_stdout(sys.stderr):  # the logger binds its stream at import
                spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(app.parent))
        _loaded[app] = module
    handler = getattr(module, "lambda_handler", None)
    if not callable(handler):
        raise ConfigError(f"{app}: no lambda_handler")
    return handler


def invoke(handler: Handler, body: str | bytes, context: LocalContext) -> InvokeResult:
    """One invocation: JSON body in, JSON answer (or the runtime's error document) out."""
    started = time.perf_counter()
    error: dict[str, Any] | None = None
    try:
        event = json.loads(body)
    except ValueError as exc:
        # The Lambda service refuses such a request before any handler runs.
        error = {
            "errorType": "InvalidRequestContentException",
            "errorMessage": f"Could not parse request body into json: {exc}",
            "stackTrace": [],
        }
        return InvokeResult(None, error, 0.0, context.aws_request_id)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            answer = handler(event, context)
        response = json.loads(json.dumps(answer))
    except Exception as exc:
        response = None
        error = {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "requestId": context.aws_request_id,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
    duration = (time.perf_counter() - started) * 1000
    return InvokeResult(response, error, duration, context.aws_request_id)


def invoke_step(
    step: str,
    body: str | bytes,
    *,
    functions_dir: Path | None = None,
    timeout_s: float = 30.0,
    memory_mb: int = 512,
) -> InvokeResult:
    handler = load_handler(step, functions_dir)
    context = LocalContext(function_name=f"zvt-{step}", timeout_s=timeout_s, memory_limit_in_mb=memory_mb)
    return invoke(handler, body, context)
