"""Append-only event store: one interface, Redis and DynamoDB backends, one contract test suite."""

from zvt_pipeline.eventstore.base import ANY_VERSION, NO_STREAM, EventStore

__all__ = ["ANY_VERSION", "NO_STREAM", "EventStore"]
