"""The execute step: ``order.validated`` -> route + execute; ``order.routed`` -> execute only.

Outputs, for a validated trigger:
- ``[order.routed, order.submitted, order.executed*, order.canceled?]`` (canceled = the unfilled remainder
  of a market / IOC / FOK order); a resting GTC limit stops after its immediate fills (later maker fills
  come from the paper venue's ``match_resting`` or the venue's own reports);
- ``[order.routed, order.failed]`` (the venue refused the order: terminal, not retried);
- ``[order.routed, order.unknown]`` (an ambiguous submit that lookups could not resolve);
- ``[order.failed]`` with ``error_code="no_route"`` when no venue is eligible.

Never a second order: the routing decision is stored per order and reused by every re-run (the first
fill moves the book, so routing again could choose another venue); before submitting, the step looks the order up by client order id at the venue (a
retried or resumed step finds the order it already placed), and after an ambiguous submit it looks again
instead of resubmitting. Retryable venue errors propagate (the invoker retries the whole step; event ids
are deterministic, so nothing is written twice). On ``order.failed`` / ``order.canceled`` the remaining risk
reservation is released, once per order and reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from zvt_pipeline.errors import AmbiguousSubmit, VenueRetryable, VenueTerminal
from zvt_pipeline.execution.circuit import CircuitBreakers
from zvt_pipeline.execution.config import ExecutionConfig
from zvt_pipeline.execution.decisions import MemoryRouteDecisions, RouteDecisions
from zvt_pipeline.execution.outcome import submission_events
from zvt_pipeline.execution.router import Router
from zvt_pipeline.execution.venues.base import Venue, VenueOrder
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import (
    OrderCanceled,
    OrderFailed,
    OrderRouted,
    OrderUnknown,
    OrderValidated,
    Payload,
)
from zvt_pipeline.step import Step

ReleaseAll = Callable[[str, str], Any]
"""``release_all(client_order_id, reason_key)``: give back what the order still holds, once per key."""


class ExecuteStep(Step):
    name = "execute"
    accepts = frozenset({"order.validated", "order.routed"})

    def __init__(
        self,
        venues: Mapping[str, Venue],
        *,
        release_all: ReleaseAll,
        breakers: CircuitBreakers | None = None,
        router: Router | None = None,
        config: ExecutionConfig | None = None,
        decisions: RouteDecisions | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``decisions`` keeps the first routing decision per order (``RedisRouteDecisions`` in production,
        so every worker sees it; the in-memory default only covers one process)."""
        self._venues = venues
        self._config = config or ExecutionConfig()
        self._breakers = breakers or CircuitBreakers(self._config.circuit)
        self._router = router or Router(venues, self._breakers, self._config.router)
        self._release_all = release_all
        self._decisions = decisions or MemoryRouteDecisions()
        self._sleep = sleep

    @property
    def venues(self) -> Mapping[str, Venue]:
        """The configured venues by id (read-only use: cancel, reconcile)."""
        return self._venues

    def run(self, trigger: Envelope) -> list[Payload]:
        if trigger.type == "order.routed":
            return self.execute(trigger)
        routed = self.route(trigger)
        if not isinstance(routed[-1], OrderRouted):
            return routed
        return [*routed, *self.execute_routed(routed[-1])]

    def route(self, trigger: Envelope) -> list[Payload]:
        """``order.validated`` -> ``[order.routed]`` or ``[order.failed(no_route)]`` (Hatchet's route task)."""
        validated = trigger.payload
        if not isinstance(validated, OrderValidated):
            raise TypeError(f"route needs an order.validated trigger, got {trigger.type}")
        coid = validated.order.client_order_id
        result = self._decisions.get(coid)
        if result is None:
            result = self._decisions.put_if_absent(coid, self._router.route(validated))
        if isinstance(result, OrderFailed):
            self._release_all(validated.order.client_order_id, "no_route")
        return [result]

    def execute(self, trigger: Envelope) -> list[Payload]:
        """``order.routed`` -> submit/fill events (Hatchet's execute task)."""
        routed = trigger.payload
        if not isinstance(routed, OrderRouted):
            raise TypeError(f"execute needs an order.routed trigger, got {trigger.type}")
        return self.execute_routed(routed)

    def execute_routed(self, routed: OrderRouted) -> list[Payload]:
        order = routed.order
        venue = self._venues.get(routed.venue)
        if venue is None:
            return self._failed(
                order, routed.venue, "venue_not_configured", f"venue {routed.venue} is not configured"
            )
        try:
            venue_order = venue.fetch_order_by_client_id(order.symbol, order.client_order_id)
            if venue_order is None:
                venue_order = venue.create_order(order)
        except AmbiguousSubmit as exc:
            self._breakers.record_failure(venue.id)
            venue_order = self._resolve(venue, order)
            if venue_order is None:
                return [
                    OrderUnknown(
                        order=order,
                        venue=venue.id,
                        reason=f"submit outcome unknown after {self._config.ambiguous_lookups} lookups "
                        f"by client order id: {exc}"[:2000],
                    )
                ]
        except VenueRetryable:
            self._breakers.record_failure(venue.id)
            raise
        except VenueTerminal as exc:
            # The venue answered: it is healthy, the order is not.
            self._breakers.record_success(venue.id)
            return self._failed(order, venue.id, exc.code, str(exc))
        self._breakers.record_success(venue.id)
        events = submission_events(order, venue_order)
        if any(isinstance(e, OrderCanceled) for e in events):
            self._release_all(order.client_order_id, "order.canceled")
        return events

    def _resolve(self, venue: Venue, order: OrderSpec) -> VenueOrder | None:
        """After an ambiguous submit: look the order up, never resubmit."""
        for n in range(self._config.ambiguous_lookups):
            if n:
                self._sleep(self._config.ambiguous_lookup_delay_seconds)
            try:
                found = venue.fetch_order_by_client_id(order.symbol, order.client_order_id)
            except VenueRetryable:
                continue
            if found is not None:
                return found
        return None

    def _failed(self, order: OrderSpec, venue: str, code: str, reason: str) -> list[Payload]:
        self._release_all(order.client_order_id, "order.failed")
        return [
            OrderFailed(
                client_order_id=order.client_order_id,
                account_id=order.account_id,
                symbol=order.symbol,
                venue=venue,
                error_code=code,
                reason=reason[:2000],
                retryable=False,
            )
        ]
