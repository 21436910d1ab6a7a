"""Redis event store: one Lua script per append compares the version, dedupes event ids and writes the
stream and the global log, so concurrent writers in any number of processes can never interleave.

Layout (all keys prefixed, see ``state/keys.py``):
- ``es:stream:<stream_id>``: a Redis stream whose entry ids are ``<version>-1``; fields ``d`` (event JSON
  without version/position) and ``p`` (global position).
- ``es:all``: the global log, entry ids ``<position>-1``; fields ``d``, ``s`` (stream id), ``v`` (version).
  ``XRANGE`` from any position is O(log N), so catch-up readers start anywhere cheaply.
- ``es:ids``: hash event_id -> ``position:version``, for idempotent appends.
- ``es:pos``: the last assigned global position.

Durability is the server's: run it with AOF (``appendonly yes``), as the embedded server does.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any
from uuid import UUID

import redis

from zvt_pipeline.errors import ConcurrencyConflict, InvalidMessage, StoreUnavailable
from zvt_pipeline.eventstore.base import EventStore
from zvt_pipeline.messages import codec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.state.keys import Keys

_APPEND_LUA = files("zvt_pipeline.eventstore").joinpath("append.lua").read_text()


class RedisEventStore(EventStore):
    def __init__(self, client: redis.Redis, *, keys: Keys | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.keys = keys or Keys()
        self._append_script = client.register_script(_APPEND_LUA)

    def _append(
        self, stream_id: str, events: list[tuple[UUID, bytes]], expected_version: int | None
    ) -> list[tuple[int, int]]:
        args: list[Any] = [-1 if expected_version is None else expected_version, stream_id]
        for event_id, data in events:
            args += [str(event_id), data]
        keys = [
            self.keys.es_stream(stream_id),
            self.keys.es_all,
            self.keys.es_event_ids,
            self.keys.es_position,
        ]
        try:
            reply = self._append_script(keys=keys, args=args)
        except redis.ConnectionError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        status = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if status in ("ok", "dup"):
            nums = [int(x) for x in reply[1:]]
            return list(zip(nums[0::2], nums[1::2], strict=True))
        if status == "conflict":
            raise ConcurrencyConflict(stream_id, expected_version or 0, int(reply[1]))
        raise InvalidMessage(
            f"event_id: {reply[1].decode()} is already stored but the rest of the batch is not "
            "(a batch is retried whole or not at all)",
            field="event_id",
        )

    def _decode(self, fields: dict[bytes, bytes], version: int, position: int) -> Envelope:
        return codec.decode(fields[b"d"], max_bytes=self.max_event_bytes, version=version, position=position)

    def _read(self, stream_id: str, after_version: int, limit: int | None) -> list[Envelope]:
        entries = self.client.xrange(
            self.keys.es_stream(stream_id), f"{after_version + 1}-1", "+", count=limit
        )
        return [self._decode(f, int(eid.split(b"-")[0]), int(f[b"p"])) for eid, f in entries]

    def _read_all(self, after_position: int, limit: int) -> list[Envelope]:
        entries = self.client.xrange(self.keys.es_all, f"{after_position + 1}-1", "+", count=limit)
        return [self._decode(f, int(f[b"v"]), int(eid.split(b"-")[0])) for eid, f in entries]

    def _stream_version(self, stream_id: str) -> int:
        return int(self.client.xlen(self.keys.es_stream(stream_id)))

    def head_position(self) -> int:
        """The last assigned global position (0 when empty)."""
        return int(self.client.get(self.keys.es_position) or 0)
