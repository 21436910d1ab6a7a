"""Turn a venue's view of an order into the lifecycle events the pipeline records."""

from __future__ import annotations

from decimal import Decimal

from zvt_pipeline.execution.venues.base import VenueOrder, VenueTrade
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import OrderCanceled, OrderExecuted, OrderSubmitted, Payload


def executed(order: OrderSpec, venue: str, trade: VenueTrade, filled_total: Decimal) -> OrderExecuted:
    """One fill as an ``order.executed`` event (``filled_total`` = cumulative filled after this fill)."""
    return OrderExecuted(
        trade_id=trade.trade_id,
        client_order_id=order.client_order_id,
        account_id=order.account_id,
        venue=venue,
        symbol=order.symbol,
        side=order.side,
        amount=trade.amount,
        price=trade.price,
        fee=trade.fee,
        timestamp=trade.timestamp,
        liquidity=trade.liquidity,
        order_amount=order.amount,
        filled_total=filled_total,
    )


def fills(order: OrderSpec, venue_order: VenueOrder) -> list[OrderExecuted]:
    """Every fill of ``venue_order``, oldest first, each with the running filled total."""
    out: list[OrderExecuted] = []
    total = Decimal(0)
    for trade in venue_order.trades:
        total += trade.amount
        out.append(executed(order, venue_order.venue, trade, total))
    return out


def submission_events(order: OrderSpec, venue_order: VenueOrder) -> list[Payload]:
    """``order.submitted``, one ``order.executed`` per fill, and ``order.canceled`` when the venue ended the
    order with an unfilled remainder (IOC / FOK / market orders, or a cancel)."""
    events: list[Payload] = [
        OrderSubmitted(
            order=order,
            venue=venue_order.venue,
            venue_order_id=venue_order.venue_order_id,
            status=venue_order.status,
        )
    ]
    events.extend(fills(order, venue_order))
    if venue_order.status == "canceled":
        events.append(canceled(order, venue_order))
    return events


def canceled(order: OrderSpec, venue_order: VenueOrder, reason: str | None = None) -> OrderCanceled:
    if reason is None:
        reason = (
            f"{order.type.value} {order.time_in_force.value} order ended with {venue_order.remaining} "
            f"of {venue_order.amount} unfilled"
        )
    return OrderCanceled(
        client_order_id=order.client_order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        venue=venue_order.venue,
        filled=venue_order.filled,
        remaining=venue_order.remaining,
        reason=reason,
    )
