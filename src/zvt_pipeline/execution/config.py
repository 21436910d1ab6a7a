"""Configuration of the execute step: venues, router, circuit breaker. Frozen, unknown fields rejected.

Built in code, from a JSON file (``ExecutionConfig.from_file``) or from the environment
(``ExecutionConfig.from_env``: ``ZVT_VENUES=paper,binance``, ``ZVT_PAPER_SEED``, ``ZVT_SECRETS_SOURCE``,
``ZVT_<EXCHANGE>_SANDBOX``, ``ZVT_<EXCHANGE>_MARKETS_FILE``). Logic never reads ``os.environ`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zvt_pipeline.errors import ConfigError


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CircuitConfig(_Config):
    failure_threshold: Annotated[int, Field(ge=1)] = 5
    """Consecutive retryable failures (timeouts, outages) that open a venue's circuit."""
    cooldown_seconds: Annotated[float, Field(gt=0)] = 30.0
    """How long an open circuit refuses orders before letting one probe through (half-open)."""
    shared: bool = True
    """Keep breaker state in Redis (all workers see it) rather than in process memory."""


class RouterConfig(_Config):
    require_known_balance: bool = False
    """Skip venues that cannot report the free balance. Off by default: risk already reserved the
    account's funds, so an unknown venue balance only loses the balance tie-break."""


class PaperVenueConfig(_Config):
    kind: Literal["paper"] = "paper"
    venue_id: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")] = "paper"
    seed: int = 0
    """Seeds the venue order ids; matching itself has no randomness."""
    markets_file: Path | None = None
    """ccxt-shaped markets JSON; default: the bundled ``data/markets.json``."""


class CcxtVenueConfig(_Config):
    kind: Literal["ccxt"] = "ccxt"
    exchange: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
    """A ccxt exchange id (``binance``, ``okx``, ``bybit``, ...); also the venue id in events."""
    sandbox: bool = False
    """Use the exchange's testnet (ccxt ``set_sandbox_mode``)."""
    markets_file: Path | None = None
    """Inject markets from a ccxt-shaped JSON file instead of calling ``load_markets`` (offline use)."""
    timeout_ms: Annotated[int, Field(ge=100, le=120_000)] = 10_000
    """ccxt request timeout; a submit that exceeds it is ambiguous and is looked up by client order id."""


VenueConfig = Annotated[PaperVenueConfig | CcxtVenueConfig, Field(discriminator="kind")]


class SecretsConfig(_Config):
    source: Literal["env", "aws"] = "env"
    """Where exchange API keys come from: ``ZVT_<EXCHANGE>_API_KEY``/``_SECRET``/``_PASSWORD`` environment
    variables, or AWS Secrets Manager."""
    aws_secret_prefix: str = "zvt/exchange/"
    """Secrets Manager id of an exchange's keys = prefix + exchange id; the secret string is JSON
    ``{"apiKey": ..., "secret": ..., "password": ...}``."""
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    """Point boto3 at moto_server or LocalStack; ``None`` = real AWS."""


class ExecutionConfig(_Config):
    venues: tuple[VenueConfig, ...] = (PaperVenueConfig(),)
    """Venues the router may choose from, in tie-break order. Default: the paper venue alone."""
    router: RouterConfig = RouterConfig()
    circuit: CircuitConfig = CircuitConfig()
    secrets: SecretsConfig = SecretsConfig()
    ambiguous_lookups: Annotated[int, Field(ge=1, le=10)] = 3
    """Lookups by client order id after an ambiguous submit before the step reports ``order.unknown``."""
    ambiguous_lookup_delay_seconds: Annotated[float, Field(ge=0, le=10)] = 0.5
    """Pause between those lookups (the venue may still be processing the order)."""

    @classmethod
    def from_file(cls, path: str | Path) -> ExecutionConfig:
        try:
            return cls.model_validate_json(Path(path).read_text())
        except (OSError, ValidationError) as exc:
            raise ConfigError(f"execution config {path}: {exc}") from None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExecutionConfig:
        venues: list[PaperVenueConfig | CcxtVenueConfig] = []
        try:
            for name in (v.strip() for v in env.get("ZVT_VENUES", "paper").split(",")):
                if not name:
                    continue
                if name == "paper":
                    venues.append(PaperVenueConfig(seed=int(env.get("ZVT_PAPER_SEED", "0"))))
                    continue
                upper = name.upper()
                markets = env.get(f"ZVT_{upper}_MARKETS_FILE")
                venues.append(
                    CcxtVenueConfig(
                        exchange=name,
                        sandbox=env.get(f"ZVT_{upper}_SANDBOX", "").lower() in {"1", "true", "yes"},
                        markets_file=Path(markets) if markets else None,
                    )
                )
            secrets = SecretsConfig(
                source=env.get("ZVT_SECRETS_SOURCE", "env"),
                aws_region=env.get("AWS_DEFAULT_REGION", "us-east-1"),
                aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            )
            return cls(venues=tuple(venues), secrets=secrets)
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"ZVT_VENUES / ZVT_SECRETS_SOURCE: {exc}") from None
