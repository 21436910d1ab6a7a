"""A circuit breaker per venue, so the router stops sending orders to a venue that keeps failing.

closed --(``failure_threshold`` consecutive failures)--> open --(``cooldown_seconds``)--> half-open
half-open lets ONE probe through (other callers still see the venue as unavailable until the probe's
cool-down lapses); a success closes the circuit, a failure opens it again for a full cool-down.

State lives in memory (one process) or in a Redis hash per venue (``keys.venue_health``), shared by every
worker. Only retryable venue errors (timeouts, outages, ambiguous submits) count as failures: a rejected
order says nothing about the venue's health.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import redis

from zvt_pipeline.execution.config import CircuitConfig
from zvt_pipeline.state.keys import Keys


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitRecord:
    failures: int = 0
    opened_at: float | None = None
    probe_until: float | None = None
    """While a half-open probe is in flight, other callers are refused until this time."""


class CircuitStore(ABC):
    @abstractmethod
    def load(self, venue: str) -> CircuitRecord: ...

    @abstractmethod
    def save(self, venue: str, record: CircuitRecord) -> None: ...

    @abstractmethod
    def claim_probe(self, venue: str, until: float, ttl_seconds: float) -> bool:
        """Atomically take the single half-open probe; False when another caller holds it."""


@dataclass
class MemoryCircuitStore(CircuitStore):
    records: dict[str, CircuitRecord] = field(default_factory=dict)

    def load(self, venue: str) -> CircuitRecord:
        r = self.records.get(venue)
        return CircuitRecord(r.failures, r.opened_at, r.probe_until) if r else CircuitRecord()

    def save(self, venue: str, record: CircuitRecord) -> None:
        self.records[venue] = record

    def claim_probe(self, venue: str, until: float, ttl_seconds: float) -> bool:
        record = self.records.setdefault(venue, CircuitRecord())
        now = until - ttl_seconds
        if record.probe_until is not None and record.probe_until > now:
            return False
        record.probe_until = until
        return True


class RedisCircuitStore(CircuitStore):
    """Hash ``keys.venue_health(venue)``: ``failures``, ``opened_at``; the probe is a ``SET NX PX`` key."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def load(self, venue: str) -> CircuitRecord:
        raw = self._client.hgetall(self._keys.venue_health(venue))
        failures = int(raw.get(b"failures", b"0"))
        opened = raw.get(b"opened_at")
        return CircuitRecord(failures=failures, opened_at=float(opened) if opened else None)

    def save(self, venue: str, record: CircuitRecord) -> None:
        key = self._keys.venue_health(venue)
        with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, "failures", record.failures)
            if record.opened_at is not None:
                pipe.hset(key, "opened_at", repr(record.opened_at))
            pipe.execute()

    def record_failure(self, venue: str) -> int:
        """Atomic increment, so concurrent workers count every failure."""
        return int(self._client.hincrby(self._keys.venue_health(venue), "failures", 1))

    def claim_probe(self, venue: str, until: float, ttl_seconds: float) -> bool:
        key = self._keys.venue_health(venue) + ":probe"
        return bool(self._client.set(key, "1", nx=True, px=max(1, int(ttl_seconds * 1000))))


class CircuitBreakers:
    """The breakers of all venues, over one store. ``clock`` returns seconds (monotonic within a process;
    wall-clock seconds when the state is shared through Redis)."""

    def __init__(
        self,
        config: CircuitConfig | None = None,
        store: CircuitStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config or CircuitConfig()
        self._store = store or MemoryCircuitStore()
        self._clock = clock

    def state(self, venue: str) -> CircuitState:
        record = self._store.load(venue)
        if record.opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - record.opened_at >= self._config.cooldown_seconds:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def allow(self, venue: str) -> bool:
        """May an order go to ``venue`` now? In half-open state only the caller that claims the probe may."""
        state = self.state(venue)
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        now = self._clock()
        ttl = self._config.cooldown_seconds
        return self._store.claim_probe(venue, now + ttl, ttl)

    def record_success(self, venue: str) -> None:
        record = self._store.load(venue)
        if record.failures or record.opened_at is not None:
            self._store.save(venue, CircuitRecord())

    def record_failure(self, venue: str) -> None:
        if isinstance(self._store, RedisCircuitStore):
            failures = self._store.record_failure(venue)
            record = self._store.load(venue)
        else:
            record = self._store.load(venue)
            record.failures += 1
            failures = record.failures
        state = self.state(venue)
        # A failed half-open probe re-opens at once; in closed state the threshold decides.
        if state is CircuitState.HALF_OPEN or (
            state is CircuitState.CLOSED and failures >= self._config.failure_threshold
        ):
            record.opened_at = self._clock()
            record.probe_until = None
        self._store.save(venue, record)
