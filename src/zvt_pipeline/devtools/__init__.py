"""Tools for local development and tests (need the ``test`` extra)."""
