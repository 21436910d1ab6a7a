"""``CancelOrder``: cancel a resting order at its venue, record ``order.canceled``, release what risk held."""

from __future__ import annotations

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.messages.commands import CancelOrder
from zvt_pipeline.messages.envelope import Envelope, deterministic_event_id
from zvt_pipeline.messages.events import OrderCanceled, OrderRequested, OrderSubmitted
from zvt_pipeline.runtime import Runtime
from zvt_pipeline.step import order_stream


def cancel_order(runtime: Runtime, command: CancelOrder) -> OrderCanceled:
    coid = command.client_order_id
    events = runtime.store.read(order_stream(coid))
    requested = next((e for e in events if isinstance(e.payload, OrderRequested)), None)
    if requested is None:
        raise InvalidMessage(f"client_order_id: no order {coid!r}", field="client_order_id")
    assert isinstance(requested.payload, OrderRequested)
    order = requested.payload.order
    if order.account_id != command.account_id:
        raise InvalidMessage(f"account_id: order {coid!r} belongs to another account", field="account_id")
    done = next((e.payload for e in events if isinstance(e.payload, OrderCanceled)), None)
    if done is not None:
        return done  # canceling twice is a no-op
    submitted = next((e.payload for e in events if isinstance(e.payload, OrderSubmitted)), None)
    if submitted is None:
        raise InvalidMessage(
            f"client_order_id: order {coid!r} is not open at any venue", field="client_order_id"
        )
    venue = runtime.execute_step.venues.get(submitted.venue)
    if venue is None:
        raise InvalidMessage(f"venue: {submitted.venue!r} is not configured here", field="venue")
    result = venue.cancel_order(order.symbol, coid)
    if result is None or result.status != "canceled":
        state = "unknown" if result is None else result.status
        raise InvalidMessage(
            f"client_order_id: order {coid!r} is {state}, nothing to cancel", field="client_order_id"
        )
    payload = OrderCanceled(
        client_order_id=coid,
        account_id=order.account_id,
        symbol=order.symbol,
        venue=submitted.venue,
        filled=result.filled,
        remaining=result.remaining,
        reason=command.reason,
    )
    run_id = requested.correlation_id
    envelope = Envelope.new(
        payload,
        stream_id=requested.stream_id,
        correlation_id=run_id,
        event_id=deterministic_event_id(run_id, "cancel", 0),
    )
    runtime.store.append(requested.stream_id, [envelope])
    from zvt_pipeline.risk.reservations import Reservations

    Reservations(runtime.client, runtime.keys).release_all(coid, "order.canceled")
    return payload
