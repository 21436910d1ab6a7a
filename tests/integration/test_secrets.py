"""Exchange API keys from env and AWS Secrets Manager (moto), cached, and never shown."""

from __future__ import annotations

import json
import logging

import boto3
import pytest
from moto import mock_aws

from zvt_pipeline import secrets
from zvt_pipeline.errors import ConfigError
from zvt_pipeline.execution.config import SecretsConfig

KEY, SECRET, PW = "AKIA-very-secret-key-1", "shh-very-secret-2", "pass-phrase-3"


@pytest.fixture(autouse=True)
def _fresh_cache():
    secrets.clear_cache()
    yield
    secrets.clear_cache()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_env_keys():
    env = {"ZVT_OKX_API_KEY": KEY, "ZVT_OKX_SECRET": SECRET, "ZVT_OKX_PASSWORD": PW}
    creds = secrets.exchange_credentials("okx", SecretsConfig(), env)
    assert creds.ccxt_params() == {"apiKey": KEY, "secret": SECRET, "password": PW}
    assert secrets.exchange_credentials("okx", SecretsConfig(), {}) is creds  # read once, cached


def test_missing_env_names_the_variables_only():
    with pytest.raises(ConfigError, match="ZVT_BINANCE_SECRET: not set") as info:
        secrets.from_env("binance", {"ZVT_BINANCE_API_KEY": KEY})
    assert KEY not in str(info.value)


def test_secrets_manager_keys_are_read_once(aws):
    aws.create_secret(Name="zvt/exchange/binance", SecretString=json.dumps({"apiKey": KEY, "secret": SECRET}))
    config = SecretsConfig(source="aws")
    creds = secrets.exchange_credentials("binance", config, {})
    assert creds.ccxt_params() == {"apiKey": KEY, "secret": SECRET}
    aws.update_secret(
        SecretId="zvt/exchange/binance", SecretString=json.dumps({"apiKey": "x", "secret": "y"})
    )
    assert secrets.exchange_credentials("binance", config, {}) is creds


def test_secrets_manager_errors_never_echo_the_content(aws):
    config = SecretsConfig(source="aws")
    with pytest.raises(
        ConfigError, match=r"secret zvt/exchange/kraken: cannot read \(ResourceNotFoundException\)"
    ):
        secrets.from_secrets_manager("kraken", config)
    aws.create_secret(Name="zvt/exchange/bybit", SecretString=f"not json {SECRET}")
    with pytest.raises(ConfigError) as info:
        secrets.from_secrets_manager("bybit", config)
    assert SECRET not in str(info.value) and "expected JSON" in str(info.value)


def test_keys_never_appear_in_repr_str_logs_or_exceptions(caplog: pytest.LogCaptureFixture):
    creds = secrets.from_env(
        "okx", {"ZVT_OKX_API_KEY": KEY, "ZVT_OKX_SECRET": SECRET, "ZVT_OKX_PASSWORD": PW}
    )
    shown = [repr(creds), str(creds), creds.model_dump_json(), str(creds.model_dump())]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("zvt_pipeline.test").info("credentials %s %r", creds, creds)
        try:
            raise ValueError(f"boom with {creds}")
        except ValueError as exc:
            logging.getLogger("zvt_pipeline.test").exception("failed")
            shown.append(str(exc))
    shown.append(caplog.text)
    for text in shown:
        for value in (KEY, SECRET, PW):
            assert value not in text
    assert "**********" in repr(creds)
