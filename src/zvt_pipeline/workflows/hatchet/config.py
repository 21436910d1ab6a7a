"""Settings of the Hatchet workflows, read from ``ZVT_HATCHET_*`` once at worker start.

The Hatchet connection itself (``HATCHET_CLIENT_TOKEN``, ``HATCHET_CLIENT_TLS_STRATEGY``, ...) is read by
the SDK; nothing here duplicates it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HatchetConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZVT_HATCHET_", frozen=True, extra="forbid")

    worker_name: str = "zvt-pipeline"
    slots: Annotated[int, Field(ge=1, le=1000)] = 50
    """Concurrent task runs per worker process. Default 50: the steps wait on Redis and venues, not CPU."""
    orders_per_second: Annotated[int, Field(ge=1)] = 10
    """Rate limit of ``execute_order`` per venue account (key ``<venue>:<account>``), mirroring the venue's
    own order limit (Binance spot: 10 orders/s per account). Default 10."""
    account_concurrency: Annotated[int, Field(ge=1)] = 5
    """``place_order`` runs of one account allowed at once (``GROUP_ROUND_ROBIN`` by ``account_id``).
    Default 5: enough for throughput, few enough that one account cannot take every slot."""
    rebalance_child_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    """How long ``portfolio.rebalance`` waits for its child orders before compensating. Default 60 s."""
    risk_monitor_cron: str = "* * * * *"
    """When ``risk.monitor`` runs. Default every minute."""
    reconcile_cron: str = "*/15 * * * *"
    """When ``trading.reconcile`` runs. Default every 15 minutes."""
    marketdata_cron: str = "* * * * *"
    """When ``marketdata.ingest`` pulls books. Default every minute (a streaming source is the
    ``zvt-pipeline`` market-data ingester; this is the scheduled pull for venues without one)."""
    max_drawdown_pct: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.20")
    """``risk.monitor``: equity below ``peak * (1 - this)`` halts the account. Default 20 %."""
    reduce_drawdown_pct: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.10")
    """``risk.monitor``: equity below ``peak * (1 - this)`` moves the account to REDUCING. Default 10 %."""
    max_gross_exposure: Annotated[Decimal, Field(gt=0)] | None = None
    """``risk.monitor``: gross exposure above this (quote currency) moves the account to REDUCING.
    Default none (the pre-trade check in the risk step limits new orders already)."""
    max_realized_loss: Annotated[Decimal, Field(gt=0)] | None = None
    """``risk.monitor``: realized PnL below ``-this`` halts the account. Default none."""
    approval_timeout_hours: Annotated[float, Field(gt=0)] = 24.0
    """``trading.reconcile``: how long a mismatch waits for an operator's approval. Default 24 h."""
