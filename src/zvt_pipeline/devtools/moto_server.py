"""``python -m zvt_pipeline.devtools.moto_server [moto_server options]``: moto_server, one DynamoDB request at
a time.

Why: moto's ``TransactWriteItems`` copies the table before a transaction and restores the copy on failure,
with no lock, so concurrent writers can undo each other's committed writes (lost events, duplicate
positions). Real DynamoDB does not do this. Serialising moto's DynamoDB handler makes it a faithful stand-in
for concurrency tests and for local multi-worker runs (``infra/local/up`` starts this server).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_lock = threading.RLock()


def serialize_moto_dynamodb() -> None:
    """Make this process's moto handle one DynamoDB request at a time."""
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.call_action
    if getattr(call_action, "serialized", False):
        return

    def serialized_call_action(self: Any) -> Any:
        with _lock:
            return call_action(self)

    serialized_call_action.serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = serialized_call_action  # type: ignore[method-assign]


def command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "zvt_pipeline.devtools.moto_server", "-H", host, "-p", str(port)]


def main(argv: list[str]) -> None:
    import os

    import moto.server

    serialize_moto_dynamodb()
    # moto keeps nothing worth flushing; a normal exit after a busy run spends ~10 s collecting garbage.
    moto.server.signal_handler = lambda signum, frame: os._exit(0)
    moto.server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
