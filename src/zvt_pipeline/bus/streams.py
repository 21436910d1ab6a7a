"""The step bus on Redis Streams.

One stream per step (``steps:<step>``), one consumer group per stream (``workers``), one consumer per worker
process. An entry carries the step's trigger event(s) as envelope JSON, so a worker needs nothing else to run
the step. Entries of order streams are never trimmed before they are processed (no MAXLEN here: a stream is
trimmed only below the group's last delivered id, see ``trim_acked``).

Delivery is at-least-once; steps are idempotent, so the effect is exactly-once. A batch is finished by ONE
``MULTI``/``EXEC``: hand the next step its triggers, acknowledge the batch, update workflow progress. A crash
before ``EXEC`` leaves the batch pending (claimed later by ``XAUTOCLAIM``); after it, the hand-on and the ack
are both done. Nothing is lost and nothing is handed on twice by one commit.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import orjson
import redis

from zvt_pipeline.messages import codec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.types import utcnow
from zvt_pipeline.state.keys import Keys

GROUP = "workers"
_PROGRESS_LUA = files("zvt_pipeline.bus").joinpath("progress.lua").read_text()
STEPS = ("risk", "execute", "portfolio")


def consumer_name() -> str:
    """Unique per node and process, so that XAUTOCLAIM can tell live consumers from dead ones."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One delivered stream entry."""

    step: str
    entry_id: bytes
    run_id: str
    raw: bytes
    """JSON list of trigger envelopes."""
    deliveries: int = 1
    completes: bool = True
    """Whether finishing this entry finishes the workflow (False for late fills of a resting order)."""

    def triggers(self) -> list[Envelope]:
        return [codec.from_dict(d) for d in codec.loads(self.raw, max_bytes=8 * 1024 * 1024)]


@dataclass(slots=True)
class Commit:
    """What one batch commits atomically."""

    acks: list[bytes] = field(default_factory=list)
    handoffs: list[tuple[str, str, list[Envelope], bool]] = field(default_factory=list)
    """(next step, run id, triggers, completes)."""
    progress: dict[str, dict[str, str]] = field(default_factory=dict)
    """run id -> fields to set on ``wf:<run_id>``."""
    closed_runs: list[str] = field(default_factory=list)
    dead: list[tuple[Entry, str, str]] = field(default_factory=list)
    """(entry, error code, error text with traceback)."""


def encode_triggers(triggers: Sequence[Envelope]) -> bytes:
    return orjson.dumps([codec.to_dict(t) for t in triggers])


class StreamBus:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._progress = client.register_script(_PROGRESS_LUA)

    # --- setup -----------------------------------------------------------------------------------------

    def ensure_groups(self, steps: Iterable[str] = STEPS) -> None:
        for step in steps:
            try:
                self.client.xgroup_create(self.keys.step_stream(step), GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # --- producing -------------------------------------------------------------------------------------

    def add_handoff(
        self, pipe: Any, step: str, run_id: str, triggers: Sequence[Envelope], completes: bool = True
    ) -> None:
        fields: dict[str, Any] = {"r": run_id, "t": encode_triggers(triggers)}
        if not completes:
            fields["c"] = "0"
        pipe.xadd(self.keys.step_stream(step), fields)

    def publish(self, step: str, run_id: str, triggers: Sequence[Envelope], completes: bool = True) -> None:
        pipe = self.client.pipeline(transaction=True)
        self.add_handoff(pipe, step, run_id, triggers, completes)
        pipe.execute()

    # --- consuming -------------------------------------------------------------------------------------

    def entries(
        self,
        step: str,
        raw: Iterable[tuple[bytes, dict[bytes, bytes]]],
        deliveries: dict[bytes, int] | None = None,
    ) -> list[Entry]:
        out = []
        for entry_id, fields in raw:
            if not fields:  # deleted while pending (XAUTOCLAIM reports those ids separately in Redis 7)
                continue
            out.append(
                Entry(
                    step=step,
                    entry_id=entry_id,
                    run_id=fields.get(b"r", b"").decode(),
                    raw=fields[b"t"],
                    deliveries=(deliveries or {}).get(entry_id, 1),
                    completes=fields.get(b"c") != b"0",
                )
            )
        return out

    def read(self, step: str, consumer: str, count: int = 100, block_ms: int = 1000) -> list[Entry]:
        """New entries for this consumer (``>``)."""
        reply = self.client.xreadgroup(
            GROUP, consumer, {self.keys.step_stream(step): ">"}, count=count, block=block_ms
        )
        if not reply:
            return []
        return self.entries(step, reply[0][1])

    def claim_stale(self, step: str, consumer: str, min_idle_ms: int, count: int = 100) -> list[Entry]:
        """Take over entries another consumer left pending longer than ``min_idle_ms`` (it died or hangs).

        Delivery counts come from XPENDING so that poison messages can be dead-lettered."""
        key = self.keys.step_stream(step)
        reply = self.client.xautoclaim(key, GROUP, consumer, min_idle_ms, start_id="0-0", count=count)
        claimed = reply[1]
        if not claimed:
            return []
        ids = [eid for eid, _ in claimed]
        pending = self.client.xpending_range(key, GROUP, min=ids[0], max=ids[-1], count=len(ids) * 4)
        deliveries = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        return self.entries(step, claimed, deliveries)

    def pending_count(self, step: str) -> int:
        info = self.client.xpending(self.keys.step_stream(step), GROUP)
        return int(info["pending"]) if info else 0

    def lag(self, step: str) -> int:
        """Entries not yet delivered to any consumer."""
        for group in self.client.xinfo_groups(self.keys.step_stream(step)):
            if group["name"] in (GROUP, GROUP.encode()):
                return int(group.get("lag") or 0)
        return 0

    # --- committing ------------------------------------------------------------------------------------

    def commit(self, step: str, commit: Commit) -> None:
        """Hand on, acknowledge, record progress and dead letters: all or nothing, one round trip."""
        if not (commit.acks or commit.handoffs or commit.progress or commit.dead):
            return
        pipe = self.client.pipeline(transaction=True)
        for next_step, run_id, triggers, completes in commit.handoffs:
            self.add_handoff(pipe, next_step, run_id, triggers, completes)
        now = utcnow().isoformat()
        for entry, code, text in commit.dead:
            pipe.xadd(
                self.keys.dlq(step),
                {
                    "r": entry.run_id,
                    "t": entry.raw,
                    "c": "1" if entry.completes else "0",
                    "source_id": entry.entry_id,
                    "error": code,
                    "detail": text[-8000:],
                    "deliveries": entry.deliveries,
                    "at": now,
                },
            )
        for run_id, fields in commit.progress.items():
            final = fields.get("status") in ("completed", "failed")
            args: list[Any] = ["1" if final else "0"]
            for name, value in {**fields, "updated_at": now}.items():
                args += [name, value]
            self._progress(keys=[self.keys.workflow(run_id)], args=args, client=pipe)
        if commit.closed_runs:
            pipe.zrem(self.keys.workflows_open, *commit.closed_runs)
        acks = commit.acks + [e.entry_id for e, _, _ in commit.dead]
        if acks:
            pipe.xack(self.keys.step_stream(step), GROUP, *acks)
        pipe.execute()

    # --- dead letters ----------------------------------------------------------------------------------

    def dlq_list(self, step: str, count: int = 100) -> list[dict[str, Any]]:
        out = []
        for entry_id, fields in self.client.xrange(self.keys.dlq(step), count=count):
            out.append(
                {
                    "id": entry_id.decode(),
                    "step": step,
                    "run_id": fields.get(b"r", b"").decode(),
                    "error": fields.get(b"error", b"").decode(),
                    "deliveries": int(fields.get(b"deliveries", b"0")),
                    "at": fields.get(b"at", b"").decode(),
                    "detail": fields.get(b"detail", b"").decode(),
                }
            )
        return out

    def dlq_redrive(self, step: str, entry_ids: Sequence[str] | None = None) -> int:
        """Move dead letters back onto the step's stream (all, or the given ids), atomically each."""
        moved = 0
        for entry_id, fields in self.client.xrange(self.keys.dlq(step)):
            if entry_ids is not None and entry_id.decode() not in entry_ids:
                continue
            pipe = self.client.pipeline(transaction=True)
            pipe.xadd(
                self.keys.step_stream(step),
                {"r": fields[b"r"], "t": fields[b"t"], "c": fields.get(b"c", b"1")},
            )
            pipe.xdel(self.keys.dlq(step), entry_id)
            pipe.execute()
            moved += 1
        return moved


def format_error(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
