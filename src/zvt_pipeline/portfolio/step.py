"""The portfolio step: ``order.executed`` -> ``position.updated``.

For each fill it (1) applies the fill to the account exactly once (``PortfolioStore.apply``) and
(2) releases the part of the order's risk reservation this fill used up, and the whole rest when the
order is completely filled. Both are idempotent by trade id, so a redelivered or retried trigger is safe
in any order of crash: a retry after (1) but before (2) finds the fill applied and still does (2).

On a duplicate delivery the step returns the same ``position.updated`` payload as the first time (stored
per fill by the store; after a rebuild that dropped it, the position and balances as they are now).
Its event id is deterministic (run + step + trigger), so the event store drops it if it was appended
before, and appends it if the first run crashed before appending.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Protocol

import redis

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import OrderExecuted, Payload, PositionUpdated
from zvt_pipeline.portfolio.store import PortfolioStore
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.step import Step


class FillReleaser(Protocol):
    """What the step needs from risk reservations (``zvt_pipeline.risk.reservations.Reservations``)."""

    def release_fill(
        self, client_order_id: str, filled_amount: Decimal, order_amount: Decimal, trade_id: str
    ) -> Any: ...

    def release_all(self, client_order_id: str, reason_key: str) -> Any: ...


class PortfolioStep(Step):
    name = "portfolio"
    accepts: ClassVar[frozenset[str]] = frozenset({"order.executed"})

    def __init__(self, client: redis.Redis, keys: Keys, releaser: FillReleaser | None = None) -> None:
        self.client = client
        self.keys = keys
        self.store = PortfolioStore(client, keys)
        self._releaser = releaser

    @property
    def releaser(self) -> FillReleaser:
        if self._releaser is None:
            # Imported here: risk reservations are a separate component, built only when first needed.
            from zvt_pipeline.risk.reservations import Reservations

            self._releaser = Reservations(self.client, self.keys)
        return self._releaser

    def run(self, trigger: Envelope) -> list[Payload]:
        fill = trigger.payload
        if not isinstance(fill, OrderExecuted):
            raise InvalidMessage(f"payload: expected order.executed, got {trigger.type}", field="payload")
        update: PositionUpdated | None = self.store.apply(fill)
        if update is None:  # delivered before: hand back what the first delivery produced
            update = self.store.result_for(fill)
            assert update is not None, "store reported a duplicate it has no record of"
        self._release(fill)
        return [update]

    def _release(self, fill: OrderExecuted) -> None:
        # Without the order's amount the share of the reservation this fill used is unknown; the rest is
        # then released when the workflow ends (canceled, failed or completed).
        if fill.order_amount is None:
            return
        self.releaser.release_fill(fill.client_order_id, fill.amount, fill.order_amount, fill.trade_id)
        if fill.filled_total is not None and fill.filled_total == fill.order_amount:
            self.releaser.release_all(fill.client_order_id, "filled")
