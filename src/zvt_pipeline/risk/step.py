"""The risk step: ``order.requested`` -> ``order.validated`` | ``order.rejected``.

One run: read the snapshot (one round trip), replay the stored decision if this run already decided,
else run the pure engine with the current config, then reserve atomically (or record the rejection).
Idempotent by run: a retry of the same trigger finds the decision in the order index and returns it again
(a validated order keeps its one reservation; a rejection stays a rejection even if the world changed),
so the deterministic event ids of ``Step.handle`` always wrap the same payload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import redis

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.markets import Market
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import OrderRejected, OrderRequested, OrderValidated, Payload
from zvt_pipeline.messages.types import utcnow
from zvt_pipeline.risk.config import RiskConfigSource
from zvt_pipeline.risk.engine import RiskEngine
from zvt_pipeline.risk.reservations import RateLimit, Reservations, ReserveResult, replay_or_duplicate
from zvt_pipeline.risk.snapshot import read_snapshot
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.step import Step


class RiskStep(Step):
    name = "risk"
    accepts = frozenset({OrderRequested.TYPE})

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        config_source: RiskConfigSource,
        markets: dict[str, Market],
        clock: Callable[[], datetime] = utcnow,
        *,
        venues: Sequence[str] = ("paper",),
        reservations: Reservations | None = None,
    ) -> None:
        """``venues``: whose books price an order that names no venue (the router's candidates)."""
        self._client = client
        self._keys = keys
        self._config_source = config_source
        self._markets = markets
        self._clock = clock
        self._venues = tuple(venues)
        self.reservations = reservations or Reservations(client, keys)

    def run(self, trigger: Envelope) -> list[Payload]:
        payload = trigger.payload
        if not isinstance(payload, OrderRequested):
            raise InvalidMessage(f"payload: expected order.requested, got {trigger.type}", field="payload")
        return [self.decide(payload.order, trigger.correlation_id)]

    def decide(self, order: OrderSpec, run_id: str) -> OrderValidated | OrderRejected:
        now = self._clock()
        snapshot = read_snapshot(self._client, self._keys, order, venues=self._venues)
        prior = replay_or_duplicate(snapshot.order_index, order, run_id)
        if prior is not None and prior.replayed:
            return self._payload(order, prior)

        config = self._config_source.get()
        decision = RiskEngine(config, self._markets).check(order, snapshot, now)
        if not decision.approved:
            assert decision.rule is not None
            result = self.reservations.record_rejection(
                order,
                run_id,
                now,
                rule=decision.rule,
                reason=decision.reason,
                details=decision.details,
                checks=decision.checks,
            )
            if result.ok or result.replayed or result.rule != "duplicate_client_order_id":
                return self._payload(order, result)
            # The id belongs to another run: report this order's own failing rule, which comes first.
            return self._payload(
                order,
                ReserveResult(ok=False, rule=decision.rule, reason=decision.reason, details=decision.details),
            )

        assert decision.reservation is not None
        limits = config.limits_for(order.account_id, order.symbol)
        rate = (
            RateLimit(limits.max_orders_per_window, limits.rate_window_seconds)
            if limits.max_orders_per_window is not None
            else None
        )
        result = self.reservations.reserve(
            order,
            decision.reservation,
            run_id,
            now,
            rate,
            held_against=decision.held_against,
            checks=decision.checks,
        )
        return self._payload(order, result)

    @staticmethod
    def _payload(order: OrderSpec, result: ReserveResult) -> OrderValidated | OrderRejected:
        if result.ok:
            assert result.reservation is not None
            return OrderValidated(order=order, reservation=result.reservation, checks=result.checks)
        return OrderRejected(
            client_order_id=order.client_order_id,
            account_id=order.account_id,
            symbol=order.symbol,
            rule=result.rule or "unknown",
            reason=result.reason[:2000],
            details=result.details,
        )
