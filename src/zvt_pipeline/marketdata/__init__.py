"""Market data: generated (seeded random walk) or from a ccxt exchange, ingested into Redis.

``ccxt_source`` is not imported here: it pulls in ccxt only when used, but keep it off the import path of
components that never talk to an exchange.
"""

from zvt_pipeline.marketdata.config import CcxtSourceConfig, SyntheticConfig
from zvt_pipeline.marketdata.ingest import (
    MARKET_DATA_TYPES,
    IngestStats,
    MarketDataIngester,
    MarketDataSource,
    mark_field,
    read_book,
)
from zvt_pipeline.marketdata.synthetic import SyntheticMarketData

__all__ = [
    "MARKET_DATA_TYPES",
    "CcxtSourceConfig",
    "IngestStats",
    "MarketDataIngester",
    "MarketDataSource",
    "SyntheticConfig",
    "SyntheticMarketData",
    "mark_field",
    "read_book",
]
