"""Portfolio: fills -> netting positions, realized/unrealized PnL, cash, equity and exposure.

``engine`` and ``valuation`` are pure; ``store`` is the Redis projection (exactly-once by trade id);
``rebuild`` replays it from the event store; ``step`` is the pipeline step.
"""

from zvt_pipeline.portfolio.engine import (
    AccountState,
    Ledger,
    Position,
    PositionKey,
    apply_fill,
    apply_fills,
    deposit,
    position_updated,
)
from zvt_pipeline.portfolio.rebuild import account_stream, diff, rebuild
from zvt_pipeline.portfolio.valuation import AccountValue, PositionValue, value_account

__all__ = [
    "AccountState",
    "AccountValue",
    "Ledger",
    "Position",
    "PositionKey",
    "PositionValue",
    "account_stream",
    "apply_fill",
    "apply_fills",
    "deposit",
    "diff",
    "position_updated",
    "rebuild",
    "value_account",
]
