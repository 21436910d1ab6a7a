"""zvt-pipeline: an event-driven crypto trading pipeline built from stateless step functions."""

__version__ = "0.1.0"
