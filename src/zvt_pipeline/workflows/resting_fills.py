"""Late fills: a resting paper order filled by a later book move becomes ``order.executed`` events of its
own workflow run and goes to the portfolio step, exactly like an immediate fill.

The market-data ingester calls ``on_book(venue, symbol)`` after each book update; this matches resting
orders and hands the fills on. Event ids derive from the trade id, so matching the same fill twice (a retry
after a crash) appends and applies nothing new.
"""

from __future__ import annotations

import logging

from zvt_pipeline.bus.streams import StreamBus
from zvt_pipeline.eventstore.base import EventStore
from zvt_pipeline.execution.venues.paper import PaperVenue, RestingFill
from zvt_pipeline.messages.envelope import Envelope, deterministic_event_id
from zvt_pipeline.step import order_stream

log = logging.getLogger(__name__)


class RestingFillRouter:
    def __init__(self, venue: PaperVenue, bus: StreamBus, store: EventStore) -> None:
        self.venue = venue
        self.bus = bus
        self.store = store
        self.fills = 0

    def run_id_of(self, client_order_id: str) -> str:
        raw = self.bus.client.hget(self.bus.keys.order(client_order_id), "run_id")
        return raw.decode() if raw else f"orphan-{client_order_id}"

    def envelope(self, fill: RestingFill) -> Envelope:
        run_id = self.run_id_of(fill.order.client_order_id)
        return Envelope.new(
            fill.event(self.venue.id),
            stream_id=order_stream(fill.order.client_order_id),
            correlation_id=run_id,
            event_id=deterministic_event_id(run_id, f"paper-fill/{fill.trade.trade_id}", 0),
        )

    def on_book(self, venue: str, symbol: str) -> None:
        if venue != self.venue.id:
            return
        for fill in self.venue.match_resting(symbol):
            env = self.envelope(fill)
            recorded = self.store.append(env.stream_id, [env])
            self.bus.publish("portfolio", env.correlation_id, recorded, completes=False)
            self.fills += 1
