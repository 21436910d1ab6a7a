"""Venue adapters. ``base`` is light; ``paper`` needs Redis; ``ccxt`` imports ccxt lazily."""

from zvt_pipeline.execution.venues.base import BestBidAsk, Venue, VenueOrder, VenueTrade

__all__ = ["BestBidAsk", "Venue", "VenueOrder", "VenueTrade"]
