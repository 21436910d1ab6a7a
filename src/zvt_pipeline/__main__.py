"""``python -m zvt_pipeline`` = the ``zvt-pipeline`` command."""

from zvt_pipeline.cli import main

main()
