"""The ``zvt-pipeline`` command line."""

from zvt_pipeline.cli.main import main

__all__ = ["main"]
