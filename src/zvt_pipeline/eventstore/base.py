"""The event store interface. The base class does the shared work (validation, encoding, the idempotency
rules); each backend implements four small private methods, like powertools' idempotency persistence layers.

Guarantees every backend gives (checked by ``tests/contract/test_eventstore_contract.py``):
- ``append`` is atomic: all events of a call are stored, or none.
- optimistic concurrency: with ``expected_version`` set, the append fails with ``ConcurrencyConflict`` unless
  the stream is at exactly that version.
- idempotent by ``event_id``: re-appending a batch whose events are already stored writes nothing and returns
  the stored records (a retried step is a no-op).
- total order per stream (``version`` 1, 2, 3 ... with no gaps) and a global order (``position``, strictly
  increasing across all streams) for catch-up consumers and replay.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from uuid import UUID

from zvt_pipeline.errors import InvalidMessage
from zvt_pipeline.messages import codec
from zvt_pipeline.messages.envelope import Envelope

ANY_VERSION: int | None = None
"""``expected_version`` that skips the concurrency check."""
NO_STREAM = 0
"""``expected_version`` for "this stream must not exist yet"."""


class EventStore(ABC):
    """Append-only, per-stream versioned, globally ordered store of ``Envelope`` records."""

    def __init__(self, *, max_event_bytes: int = codec.MAX_EVENT_BYTES, max_batch: int = 100) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_batch = max_batch

    # --- public API ------------------------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[Envelope], expected_version: int | None = ANY_VERSION
    ) -> list[Envelope]:
        """Append ``events`` to ``stream_id`` atomically; return them with ``version``/``position`` set."""
        if not events:
            return []
        encoded = self._encode_batch(stream_id, events, expected_version)
        assigned = self._append(stream_id, encoded, expected_version)
        return [ev.recorded(v, p) for ev, (v, p) in zip(events, assigned, strict=True)]

    def read(self, stream_id: str, after_version: int = 0, limit: int | None = None) -> list[Envelope]:
        """Events of one stream with ``version > after_version``, in version order."""
        if after_version < 0 or (limit is not None and limit < 1):
            raise InvalidMessage("after_version must be >= 0 and limit >= 1")
        return self._read(stream_id, after_version, limit)

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[Envelope]:
        """Events of all streams with ``position > after_position``, in global order."""
        if after_position < 0 or limit < 1:
            raise InvalidMessage("after_position must be >= 0 and limit >= 1")
        return self._read_all(after_position, limit)

    def iter_all(self, after_position: int = 0, batch: int = 1000) -> Iterator[Envelope]:
        """Every event after ``after_position``, paging through ``read_all``."""
        while True:
            page = self.read_all(after_position, batch)
            yield from page
            if len(page) < batch:
                return
            after_position = page[-1].position or after_position

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 if it has no events)."""
        return self._stream_version(stream_id)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Optional."""

    # --- backend hooks ---------------------------------------------------------------------------------

    @abstractmethod
    def _append(
        self, stream_id: str, events: list[tuple[UUID, bytes]], expected_version: int | None
    ) -> list[tuple[int, int]]:
        """Store encoded events atomically; return ``(version, position)`` for each.

        If the first event id is already stored, return the stored ``(version, position)`` of every event
        of the batch and write nothing. Raise ``ConcurrencyConflict`` on a version mismatch."""

    @abstractmethod
    def _read(self, stream_id: str, after_version: int, limit: int | None) -> list[Envelope]: ...

    @abstractmethod
    def _read_all(self, after_position: int, limit: int) -> list[Envelope]: ...

    @abstractmethod
    def _stream_version(self, stream_id: str) -> int: ...

    # --- shared work -----------------------------------------------------------------------------------

    def _encode_batch(
        self, stream_id: str, events: Sequence[Envelope], expected_version: int | None
    ) -> list[tuple[UUID, bytes]]:
        """Validate the whole batch before anything is written."""
        if len(events) > self.max_batch:
            raise InvalidMessage(f"events: {len(events)} events in one append, more than {self.max_batch}")
        if expected_version is not None and expected_version < 0:
            raise InvalidMessage(f"expected_version: must be >= 0, got {expected_version}")
        seen: set[UUID] = set()
        out: list[tuple[UUID, bytes]] = []
        for ev in events:
            if not isinstance(ev, Envelope):
                raise InvalidMessage(f"events: expected Envelope, got {type(ev).__name__}")
            if ev.stream_id != stream_id:
                raise InvalidMessage(f"stream_id: event is for {ev.stream_id!r}, appending to {stream_id!r}")
            if ev.event_id in seen:
                raise InvalidMessage(f"event_id: {ev.event_id} appears twice in one append", field="event_id")
            seen.add(ev.event_id)
            out.append((ev.event_id, codec.encode(ev, for_store=True, max_bytes=self.max_event_bytes)))
        return out
