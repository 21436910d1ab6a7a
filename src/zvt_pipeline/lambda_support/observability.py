"""Powertools Logger, Metrics and Tracer for a step function, with secrets scrubbed from every log line.

Secrets are the values of environment variables whose names say they are secret (``*_API_KEY``,
``*_SECRET``, ``*_PASSWORD``, ``*_TOKEN``...) and passwords inside URLs (``REDIS_URL``). Exchange keys read
from Secrets Manager never reach a log in the first place: they are held in ``SecretStr``
(``zvt_pipeline.secrets``); more values can be added with ``Redactor.add``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field

from zvt_pipeline.messages.types import Message

MASK = "***"
SECRET_NAME = re.compile(r"(API_KEY|APIKEY|SECRET|SECRET_KEY|PASSWORD|PASSPHRASE|TOKEN)$", re.IGNORECASE)
MIN_SECRET_LENGTH = 6
"""Shorter values are not masked: masking a 2-letter value would garble every log line."""


class ObservabilityConfig(Message):
    """What the SAM template sets (``POWERTOOLS_*``); the defaults serve local runs and tests."""

    service: Annotated[str, Field(min_length=1)]
    """``POWERTOOLS_SERVICE_NAME``; default ``zvt-<step>``."""
    metrics_namespace: Annotated[str, Field(min_length=1)] = "ZvtPipeline"
    """``POWERTOOLS_METRICS_NAMESPACE``: the CloudWatch namespace of the EMF metrics."""
    log_level: str = "INFO"
    """``POWERTOOLS_LOG_LEVEL``."""
    trace_boto: bool = True
    """Patch botocore for X-Ray subsegments (DynamoDB event store, Secrets Manager). Only botocore: patching
    every supported library would import ones these functions never use, on the cold path."""

    @classmethod
    def from_env(cls, step: str, env: Mapping[str, str]) -> ObservabilityConfig:
        return cls(
            service=env.get("POWERTOOLS_SERVICE_NAME") or f"zvt-{step}",
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or "ZvtPipeline",
            log_level=(env.get("POWERTOOLS_LOG_LEVEL") or "INFO").upper(),
        )


class Redactor:
    """Replaces known secret values (and their JSON-escaped spelling) with ``***``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()
        self.add(values)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Redactor:
        return cls(secret_values(env))

    def add(self, values: Iterable[str]) -> None:
        forms = set(self._values)
        for value in values:
            if value and len(value) >= MIN_SECRET_LENGTH:
                forms.add(value)
                forms.add(json.dumps(value)[1:-1])
        with self._lock:
            # Longest first, so a secret that contains another is masked whole.
            self._values = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._values)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values of variables named like secrets, and passwords embedded in URL-valued variables."""
    found = [v for k, v in env.items() if SECRET_NAME.search(k)]
    for value in env.values():
        if "://" in value and "@" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                continue
            if password:
                found.append(password)
    return found


def redacting_formatter(redact: Redactor, **kwargs: Any) -> Any:
    """Powertools' JSON formatter whose output (message, extra keys, exception text) is scrubbed."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    class RedactingFormatter(LambdaPowertoolsFormatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    return RedactingFormatter(**kwargs)


class RedactingFilter(logging.Filter):
    """For handlers that are not ours (the Lambda runtime's on the root logger): scrub the message and the
    exception text of every record they handle, whichever library logged it."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def install_root_redaction(redact: Redactor) -> None:
    """Add the filter to the root logger's handlers (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redact))


@dataclass(frozen=True)
class Tools:
    logger: Any
    """``aws_lambda_powertools.Logger``"""
    metrics: Any
    """``aws_lambda_powertools.Metrics``"""
    tracer: Any
    """``aws_lambda_powertools.Tracer``"""
    redact: Redactor


def powertools(config: ObservabilityConfig, redact: Redactor, *, stream: IO[str] | None = None) -> Tools:
    """Logger (JSON, redacting), Metrics (EMF) and Tracer (X-Ray; off outside Lambda) for one function."""
    from aws_lambda_powertools import Logger, Metrics, Tracer

    logger = Logger(
        service=config.service,
        level=config.log_level,
        stream=stream,
        logger_formatter=redacting_formatter(redact),
    )
    metrics = Metrics(namespace=config.metrics_namespace, service=config.service)
    tracer = Tracer(
        service=config.service,
        auto_patch=config.trace_boto,
        patch_modules=["botocore"] if config.trace_boto else None,
    )
    install_root_redaction(redact)
    return Tools(logger, metrics, tracer, redact)
