"""Redis state: key names and projections rebuilt from the event store."""
