"""Messages: commands (verbs), events (past tense), the event envelope and the one codec."""

from zvt_pipeline.messages.commands import (
    CancelOrder,
    RebalancePortfolio,
    SetTradingState,
    SubmitOrder,
)
from zvt_pipeline.messages.envelope import Envelope, deterministic_event_id
from zvt_pipeline.messages.events import EVENT_TYPES, Payload

__all__ = [
    "EVENT_TYPES",
    "CancelOrder",
    "Envelope",
    "Payload",
    "RebalancePortfolio",
    "SetTradingState",
    "SubmitOrder",
    "deterministic_event_id",
]
