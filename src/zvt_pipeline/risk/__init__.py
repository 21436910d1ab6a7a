"""Pre-trade risk: limits (``config``), the pure rule engine (``engine``), the Redis snapshot it reads
(``snapshot``), atomic reservations (``reservations``) and the pipeline step (``step``).

``step`` is not imported here, so that ``from zvt_pipeline.risk import Reservations`` (used by the
portfolio and execution steps to release funds) stays light.
"""

from zvt_pipeline.risk.config import RiskConfig, RiskConfigSource, RiskLimits, RiskLimitsOverride
from zvt_pipeline.risk.engine import ATOMIC_RULES, ENGINE_RULES, RiskDecision, RiskEngine
from zvt_pipeline.risk.reservations import RateLimit, ReservationContention, Reservations, ReserveResult
from zvt_pipeline.risk.snapshot import RiskSnapshot, read_snapshot, set_trading_state

__all__ = [
    "ATOMIC_RULES",
    "ENGINE_RULES",
    "RateLimit",
    "ReservationContention",
    "Reservations",
    "ReserveResult",
    "RiskConfig",
    "RiskConfigSource",
    "RiskDecision",
    "RiskEngine",
    "RiskLimits",
    "RiskLimitsOverride",
    "RiskSnapshot",
    "read_snapshot",
    "set_trading_state",
]
