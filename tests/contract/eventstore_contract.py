"""The event store contract: every backend's test module subclasses ``EventStoreContract`` and overrides
``store_factory`` (eventsourcing's style: one abstract test case, backends only say how to build a store).

``store_factory`` returns a picklable zero-argument callable, so that worker processes can build their own
store against the same server.
"""

from __future__ import annotations

import multiprocessing as mp
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from zvt_pipeline.errors import ConcurrencyConflict, InvalidMessage, PayloadTooLarge
from zvt_pipeline.eventstore.base import NO_STREAM, EventStore
from zvt_pipeline.messages.envelope import Envelope, deterministic_event_id
from zvt_pipeline.messages.events import AlertTriggered, PriceUpdated

StoreFactory = Callable[[], EventStore]


def price_event(stream_id: str, n: int, *, event_id: uuid.UUID | None = None, note: str = "") -> Envelope:
    payload = PriceUpdated(venue="paper", symbol="BTC/USDT", price=Decimal("60000.5") + n)
    if note:
        payload = AlertTriggered(severity="info", source="test", message=note)  # type: ignore[assignment]
    return Envelope.new(payload, stream_id=stream_id, correlation_id="run-1", event_id=event_id)


def _writer(factory: StoreFactory, stream_id: str, writer: int, count: int, out: object) -> None:
    """Append ``count`` events one at a time with optimistic concurrency, retrying conflicts."""
    store = factory()
    won: list[int] = []
    conflicts = 0
    while len(won) < count:
        version = store.stream_version(stream_id)
        ev = price_event(stream_id, writer * 1000 + len(won))
        try:
            recorded = store.append(stream_id, [ev], expected_version=version)
        except ConcurrencyConflict:
            conflicts += 1
            continue
        won.append(recorded[0].version or 0)
    out.put((writer, won, conflicts))  # type: ignore[attr-defined]


class EventStoreContract:
    """Abstract contract; pytest collects it only through subclasses named ``Test*``."""

    concurrency: str = "process"  # "thread" where the backend cannot be shared across processes

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        raise NotImplementedError

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> EventStore:
        return store_factory()

    @pytest.fixture
    def stream(self) -> str:
        return f"order-{uuid.uuid4().hex[:12]}"

    def test_append_assigns_versions_and_positions(self, store: EventStore, stream: str) -> None:
        recorded = store.append(
            stream, [price_event(stream, i) for i in range(3)], expected_version=NO_STREAM
        )
        assert [e.version for e in recorded] == [1, 2, 3]
        positions = [e.position for e in recorded]
        assert all(p is not None for p in positions)
        assert positions == sorted(positions) and len(set(positions)) == 3
        assert store.stream_version(stream) == 3

    def test_read_after_write_round_trips_payloads(self, store: EventStore, stream: str) -> None:
        events = [price_event(stream, i) for i in range(5)]
        recorded = store.append(stream, events)
        read = store.read(stream)
        assert read == recorded
        assert read[0].payload == events[0].payload
        assert isinstance(read[0].payload, PriceUpdated) and read[0].payload.price == Decimal("60000.5")
        assert store.read(stream, after_version=3) == recorded[3:]
        assert store.read(stream, after_version=1, limit=2) == recorded[1:3]

    def test_unknown_stream_is_empty(self, store: EventStore) -> None:
        assert store.read("order-missing") == []
        assert store.stream_version("order-missing") == 0

    def test_expected_version_conflict_raises_and_writes_nothing(
        self, store: EventStore, stream: str
    ) -> None:
        store.append(stream, [price_event(stream, 0)], expected_version=NO_STREAM)
        with pytest.raises(ConcurrencyConflict) as info:
            store.append(stream, [price_event(stream, 1)], expected_version=NO_STREAM)
        assert info.value.expected == 0 and info.value.actual == 1
        assert "expected version 0" in str(info.value)
        assert store.stream_version(stream) == 1
        store.append(stream, [price_event(stream, 1)], expected_version=1)
        assert store.stream_version(stream) == 2

    def test_reappending_stored_events_is_a_no_op(self, store: EventStore, stream: str) -> None:
        ids = [deterministic_event_id("run-x", "risk", n) for n in range(2)]
        events = [price_event(stream, n, event_id=ids[n]) for n in range(2)]
        first = store.append(stream, events, expected_version=NO_STREAM)
        # A retry after a crash re-sends the same batch, with the same (now stale) expected version.
        again = store.append(stream, events, expected_version=NO_STREAM)
        assert [(e.version, e.position) for e in again] == [(e.version, e.position) for e in first]
        assert store.stream_version(stream) == 2
        assert len(store.read(stream)) == 2

    def test_duplicate_event_id_inside_a_batch_is_rejected(self, store: EventStore, stream: str) -> None:
        eid = uuid.uuid4()
        with pytest.raises(InvalidMessage, match="event_id"):
            store.append(stream, [price_event(stream, 0, event_id=eid), price_event(stream, 1, event_id=eid)])
        assert store.stream_version(stream) == 0

    def test_large_payload_is_rejected_before_writing(self, store: EventStore, stream: str) -> None:
        big = price_event(stream, 0, note="x" * 1900)
        store.max_event_bytes = 1024
        with pytest.raises(PayloadTooLarge, match="byte limit"):
            store.append(stream, [price_event(stream, 1), big])
        assert store.stream_version(stream) == 0

    def test_malformed_event_is_rejected_before_writing(self, store: EventStore, stream: str) -> None:
        with pytest.raises(InvalidMessage, match="stream_id"):
            store.append(stream, [price_event(stream, 0), price_event("order-other", 1)])
        with pytest.raises(InvalidMessage, match="Envelope"):
            store.append(stream, [price_event(stream, 0), {"type": "order.requested"}])  # type: ignore[list-item]
        assert store.stream_version(stream) == 0
        assert store.stream_version("order-other") == 0

    def test_read_all_is_a_global_order_across_streams(self, store: EventStore, stream: str) -> None:
        other = stream + "-b"
        a = store.append(stream, [price_event(stream, 0)])
        b = store.append(other, [price_event(other, 1), price_event(other, 2)])
        c = store.append(stream, [price_event(stream, 3)])
        start = (a[0].position or 1) - 1
        mine = [e for e in store.read_all(after_position=start, limit=1000) if e.stream_id in (stream, other)]
        assert [e.event_id for e in mine] == [e.event_id for e in a + b + c]
        assert [e.position for e in mine] == sorted(e.position or 0 for e in mine)
        page = store.read_all(after_position=start, limit=2)
        assert len(page) == 2 and page[0].position == a[0].position
        assert [e.event_id for e in store.iter_all(start, batch=2) if e.stream_id in (stream, other)] == [
            e.event_id for e in mine
        ]

    def test_concurrent_writers_lose_and_duplicate_nothing(
        self, store_factory: StoreFactory, store: EventStore, stream: str
    ) -> None:
        writers, per_writer = 8, 15
        if self.concurrency == "process":
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            procs = [
                ctx.Process(target=_writer, args=(store_factory, stream, w, per_writer, queue))
                for w in range(writers)
            ]
            for p in procs:
                p.start()
            results = [queue.get(timeout=120) for _ in procs]
            for p in procs:
                p.join(timeout=30)
                assert p.exitcode == 0
        else:
            import queue as queue_mod

            q: queue_mod.Queue[tuple[int, list[int], int]] = queue_mod.Queue()
            with ThreadPoolExecutor(writers) as pool:
                futures = [
                    pool.submit(_writer, store_factory, stream, w, per_writer, q) for w in range(writers)
                ]
            for future in futures:
                future.result()  # a writer's exception fails the test instead of hanging it on q.get()
            results = [q.get() for _ in range(writers)]
        won = sorted(v for _, versions, _ in results for v in versions)
        # exactly one writer won each version, no version was lost or given twice
        assert won == list(range(1, writers * per_writer + 1))
        events = store.read(stream)
        assert [e.version for e in events] == won
        assert len({e.event_id for e in events}) == len(events)
        positions = [e.position or 0 for e in events]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
