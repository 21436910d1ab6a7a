"""The embedded-default invoker: worker processes consuming ``steps:<step>`` through consumer groups.

Per batch: run the step on each entry, append its events to the event store (idempotent by event id), then
commit hand-on + ack + progress in one MULTI (see ``bus/streams.py``). Failures:
- terminal error (bad input, a poison message): dead-lettered at once, the workflow marked failed;
- anything else: left pending; any live worker claims it after ``idle_ms`` (XAUTOCLAIM) and retries it;
  after ``max_deliveries`` it is dead-lettered with its last error. Nothing is dropped.
A risk rejection is not an error: it completes the workflow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zvt_pipeline.bus.streams import GROUP, STEPS, Commit, Entry, StreamBus, consumer_name, format_error
from zvt_pipeline.errors import ZvtError
from zvt_pipeline.eventstore.base import EventStore
from zvt_pipeline.messages.events import WorkflowFailed
from zvt_pipeline.messages.types import utcnow
from zvt_pipeline.step import Step, emit
from zvt_pipeline.workflows.run_step import StepOutcome, run_step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    steps: tuple[str, ...] = STEPS
    batch: int = 200
    """Entries read per XREADGROUP: larger batches amortise the commit round trip."""
    block_ms: int = 200
    idle_ms: int = 5_000
    """Pending longer than this = its consumer is presumed dead; any worker may claim the entry."""
    max_deliveries: int = 5
    """After this many deliveries an entry goes to ``dlq:<step>``."""
    resume_after_s: float = 60.0
    """On start, re-publish runs with no progress for this long (their hand-on was lost, e.g. a submitter or
    a Hatchet run died). Crashed workers' entries do not need this: XAUTOCLAIM takes them over."""


class StepWorker:
    """Runs one or more steps in this process. Thread-safe to ``stop()`` from another thread."""

    def __init__(
        self,
        bus: StreamBus,
        store: EventStore,
        steps: Callable[[str], Step],
        config: WorkerConfig | None = None,
        consumer: str | None = None,
    ) -> None:
        self.bus = bus
        self.store = store
        self.steps = steps
        self.config = config or WorkerConfig()
        self.consumer = consumer or consumer_name()
        self._stop = threading.Event()
        self.processed = 0
        self.dead_lettered = 0
        self._last_claim = 0.0

    def stop(self) -> None:
        self._stop.set()

    # --- loop ------------------------------------------------------------------------------------------

    def run(self, until: Callable[[], bool] | None = None) -> None:
        self.bus.ensure_groups(self.config.steps)
        while not self._stop.is_set() and not (until and until()):
            self.claim_stale()
            self.poll_once()

    def poll_once(self, block_ms: int | None = None) -> int:
        """Read one batch from all of this worker's step streams and process it. Returns entries seen."""
        keys = {self.bus.keys.step_stream(s): s for s in self.config.steps}
        reply = self.bus.client.xreadgroup(
            GROUP,
            self.consumer,
            {k: ">" for k in keys},
            count=self.config.batch,
            block=self.config.block_ms if block_ms is None else block_ms,
        )
        seen = 0
        for stream_key, raw in reply or []:
            step = keys[stream_key.decode() if isinstance(stream_key, bytes) else stream_key]
            entries = self.bus.entries(step, raw)
            seen += len(entries)
            self.process(step, entries)
        return seen

    def claim_stale(self, force: bool = False) -> int:
        """Claim entries whose consumer went quiet, at most every half idle bound."""
        now = time.monotonic()
        if not force and now - self._last_claim < self.config.idle_ms / 2000:
            return 0
        self._last_claim = now
        claimed = 0
        for step in self.config.steps:
            entries = self.bus.claim_stale(step, self.consumer, self.config.idle_ms, self.config.batch)
            if entries:
                claimed += len(entries)
                self.process(step, entries)
        return claimed

    # --- one batch -------------------------------------------------------------------------------------

    def process(self, step_name: str, entries: Sequence[Entry]) -> None:
        commit = Commit()
        step = self.steps(step_name)
        for entry in entries:
            if entry.deliveries > self.config.max_deliveries:
                self._dead(commit, step_name, entry, "max_deliveries", self._last_error(entry))
                continue
            try:
                result = self.run_entry(step, entry)
            except ZvtError as exc:
                if exc.retryable:
                    self._remember_error(commit, entry, exc)
                    continue
                self._dead(commit, step_name, entry, exc.code, format_error(exc))
                continue
            except Exception as exc:  # a bug or an outage: retry later, dead-letter after max_deliveries
                log.exception("step %s failed on %s", step_name, entry.entry_id)
                self._remember_error(commit, entry, exc)
                continue
            self._record(commit, step_name, entry, result)
        self.bus.commit(step_name, commit)
        self.processed += len(commit.acks)
        self.dead_lettered += len(commit.dead)

    def run_entry(self, step: Step, entry: Entry) -> StepOutcome:
        return run_step(step, self.store, entry.triggers(), completes=entry.completes)

    # --- bookkeeping -----------------------------------------------------------------------------------

    def _record(self, commit: Commit, step_name: str, entry: Entry, result: StepOutcome) -> None:
        commit.acks.append(entry.entry_id)
        plan = result.plan
        if plan.next_step:
            commit.handoffs.append((plan.next_step, entry.run_id, list(plan.triggers), True))
            commit.progress[entry.run_id] = {"step": plan.next_step, "status": "running"}
        elif plan.outcome is not None:
            commit.progress[entry.run_id] = {
                **{f"result_{k}": v for k, v in plan.summary.items()},
                "step": step_name,
                "status": "completed",
                "outcome": plan.outcome,
                "completed_at": utcnow().isoformat(),
            }
            commit.closed_runs.append(entry.run_id)

    def _remember_error(self, commit: Commit, entry: Entry, exc: BaseException) -> None:
        commit.progress[entry.run_id] = {
            "last_error": f"{type(exc).__name__}: {exc}"[:500],
            "attempts": str(entry.deliveries),
        }

    def _last_error(self, entry: Entry) -> str:
        raw = self.bus.client.hget(self.bus.keys.workflow(entry.run_id), "last_error")
        return raw.decode() if raw else "exceeded max deliveries"

    def _dead(self, commit: Commit, step_name: str, entry: Entry, code: str, text: str) -> None:
        commit.dead.append((entry, code, text))
        commit.progress[entry.run_id] = {
            "step": step_name,
            "status": "failed",
            "outcome": "failed",
            "last_error": text.strip().splitlines()[-1][:500] if text.strip() else code,
        }
        commit.closed_runs.append(entry.run_id)
        self._append_failure(step_name, entry, code, text)

    def _append_failure(self, step_name: str, entry: Entry, code: str, text: str) -> None:
        """Best effort: record workflow.failed in the event store (the DLQ keeps the entry either way)."""
        try:
            trigger = entry.triggers()[-1]
        except ZvtError:
            return  # the entry itself is malformed: there is no stream to write to
        reason = text.strip().splitlines()[-1][:1900] if text.strip() else code
        failed = WorkflowFailed(run_id=entry.run_id, step=step_name, error_code=code, reason=reason)
        try:
            self.store.append(trigger.stream_id, emit(trigger, "workflow-failed", [failed]))
        except Exception:
            log.exception("could not record workflow.failed for %s", entry.run_id)
