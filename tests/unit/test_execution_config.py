"""Execution config parsing, and that the paper path never imports ccxt or boto3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zvt_pipeline.errors import ConfigError
from zvt_pipeline.execution.config import CcxtVenueConfig, ExecutionConfig, PaperVenueConfig


def test_default_is_the_paper_venue_alone():
    assert ExecutionConfig().venues == (PaperVenueConfig(),)
    assert ExecutionConfig.from_env({}).venues == (PaperVenueConfig(),)


def test_from_env_lists_venues_in_order():
    cfg = ExecutionConfig.from_env(
        {
            "ZVT_VENUES": "binance, paper,okx",
            "ZVT_PAPER_SEED": "9",
            "ZVT_BINANCE_SANDBOX": "true",
            "ZVT_OKX_MARKETS_FILE": "/tmp/okx.json",
            "ZVT_SECRETS_SOURCE": "aws",
        }
    )
    assert cfg.venues == (
        CcxtVenueConfig(exchange="binance", sandbox=True),
        PaperVenueConfig(seed=9),
        CcxtVenueConfig(exchange="okx", markets_file=Path("/tmp/okx.json")),
    )
    assert cfg.secrets.source == "aws"


@pytest.mark.parametrize(
    "env", [{"ZVT_VENUES": "Bad-Name"}, {"ZVT_SECRETS_SOURCE": "vault"}, {"ZVT_PAPER_SEED": "x"}]
)
def test_bad_env_is_a_config_error(env):
    with pytest.raises(ConfigError):
        ExecutionConfig.from_env(env)


def test_unknown_fields_are_rejected(tmp_path):
    path = tmp_path / "exec.json"
    path.write_text('{"venues": [{"kind": "paper", "colour": "red"}]}')
    with pytest.raises(ConfigError, match="colour"):
        ExecutionConfig.from_file(path)


def test_paper_execution_path_imports_neither_ccxt_nor_boto3():
    code = (
        "import sys; import zvt_pipeline.execution, zvt_pipeline.execution.venues.paper, "
        "zvt_pipeline.execution.venues.registry; "
        "print(sorted(m for m in ('ccxt', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
