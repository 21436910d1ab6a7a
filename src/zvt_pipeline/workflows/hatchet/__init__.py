"""Hatchet workflows running the same step functions as the Streams workers (see docs/hatchet.md).

Nothing here imports ``hatchet_sdk`` at module level: the SDK is imported where a workflow is defined or a
client is built, so the CLI and the Lambda handlers never pay for it.
"""
