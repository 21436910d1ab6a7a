"""Exchange API keys: from the environment or AWS Secrets Manager, read once per process, never shown.

Values are held in pydantic ``SecretStr``: ``repr``/``str``/logging show ``**********``; only
``reveal()`` (called where the ccxt exchange object is built) returns the plain text. Error messages name
the variable or secret id, never its content.

- env: ``ZVT_<EXCHANGE>_API_KEY``, ``ZVT_<EXCHANGE>_SECRET``, optional ``ZVT_<EXCHANGE>_PASSWORD`` (OKX's
  passphrase).
- aws: secret ``<prefix><exchange>`` whose string is JSON ``{"apiKey", "secret", "password"?}``. boto3 is
  imported only here, only when this source is used.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from zvt_pipeline.errors import ConfigError
from zvt_pipeline.execution.config import SecretsConfig
from zvt_pipeline.messages.types import Message


class ExchangeCredentials(Message):
    exchange: str
    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = None

    def ccxt_params(self) -> dict[str, str]:
        """The only place plain values leave this object: the ccxt constructor's config."""
        params = {"apiKey": self.api_key.get_secret_value(), "secret": self.secret.get_secret_value()}
        if self.password is not None:
            params["password"] = self.password.get_secret_value()
        return params

    def secret_values(self) -> tuple[str, ...]:
        """The plain values, for log redaction filters."""
        return tuple(v for v in self.ccxt_params().values() if v)


_cache: dict[tuple[str, str], ExchangeCredentials] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget cached credentials (tests; key rotation)."""
    with _lock:
        _cache.clear()


def from_env(exchange: str, env: Mapping[str, str]) -> ExchangeCredentials:
    prefix = f"ZVT_{exchange.upper()}_"
    key, secret = env.get(prefix + "API_KEY"), env.get(prefix + "SECRET")
    if not key or not secret:
        missing = [n for n, v in ((prefix + "API_KEY", key), (prefix + "SECRET", secret)) if not v]
        raise ConfigError(f"{', '.join(missing)}: not set (API keys of exchange {exchange!r})")
    password = env.get(prefix + "PASSWORD")
    return ExchangeCredentials(
        exchange=exchange,
        api_key=SecretStr(key),
        secret=SecretStr(secret),
        password=SecretStr(password) if password else None,
    )


def from_secrets_manager(
    exchange: str, config: SecretsConfig, client: Any | None = None
) -> ExchangeCredentials:
    secret_id = config.aws_secret_prefix + exchange
    if client is None:
        import boto3  # lazily: only deployments that keep keys in Secrets Manager pay for it

        client = boto3.client(
            "secretsmanager", region_name=config.aws_region, endpoint_url=config.aws_endpoint_url
        )
    try:
        raw = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except Exception as exc:  # botocore's ClientError and connection errors alike
        raise ConfigError(f"secret {secret_id}: cannot read ({type(exc).__name__})") from None
    try:
        data = json.loads(raw)
        key, secret = data["apiKey"], data["secret"]
        if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        # Never echo the content: it is the secret.
        raise ConfigError(
            f'secret {secret_id}: expected JSON {{"apiKey": ..., "secret": ..., "password"?: ...}}'
        ) from None
    password = data.get("password")
    return ExchangeCredentials(
        exchange=exchange,
        api_key=SecretStr(key),
        secret=SecretStr(secret),
        password=SecretStr(str(password)) if password else None,
    )


def exchange_credentials(
    exchange: str, config: SecretsConfig, env: Mapping[str, str], client: Any | None = None
) -> ExchangeCredentials:
    """The keys of ``exchange`` from the configured source, read once per process and cached."""
    cache_key = (config.source, exchange)
    with _lock:
        cached = _cache.get(cache_key)
        if cached is not None:
            return cached
        if config.source == "aws":
            creds = from_secrets_manager(exchange, config, client)
        else:
            creds = from_env(exchange, env)
        _cache[cache_key] = creds
        return creds
