"""The store writer: one thread that applies every store write of the daemon, in order.

The event loop measures the seconds and must never wait on the store (ARCHITECTURE.md
"Invariants"): a CLI holding SQLite's write lock, a full disk or a slow database would
otherwise make launches late. So the detector's sink and the policy only *submit* work
here, which costs a list append; this thread writes it.

Order is the guarantee. Jobs are applied strictly in the order they were submitted: a
second's verdicts, evidence and attempt counts (a `SecondsJob`), then the policy's effects
of that second (an `EffectsJob`: incident rows, timeline events, outbox items,
alerting/effects.py). So a verdict is durable before any incident event, page or API
answer that depends on it, and the outbox only ever holds pages whose cause is stored.

A job the store refuses stays at the head of the queue and is retried with backoff
(`retry_min` doubling to `retry_max`) until the store takes it; nothing behind it
overtakes it, nothing is dropped. Consecutive `SecondsJob`s waiting together are written as
one (a store that was refusing catches up in a few transactions). Steps of a job that were
written are not written again. An `EffectsJob` holding outbox items that has waited
longer than `stuck_after` seconds is handed to `on_stuck` once (`report_stuck`), so that
a Critical Issue is paged from memory while the store still refuses (alerting/outbox.py
reconciles the page with the stored item when the store comes back).

Effects are written through the store the job names (`submit_effects(store=)`): the
leader's fenced view (monitor/leader.py). When that view says the leader was replaced
(`StaleEpoch`), the job is dropped with one WARNING and `on_stale` is told: the successor
restores the incidents from the store and decides for itself; retrying would never succeed.

Bounded in one place only: attempt evidence (the bulky part, full detail of failed
attempts) past `max_evidence` attempts waiting is dropped and counted (`on_drop`); the
verdicts, the per-minute counts and the effects are never dropped, so a store that refuses
for hours costs memory (about 0.2 KB a verdict: 30 streams take ~0.5 GB a day) and then
catches up in full.

Callbacks (`on_applied`, `on_stuck`, `on_error`, `on_drop`) run in the writer thread (or
the caller's, for `on_drop`); they must be quick and thread-safe (the daemon forwards
loop work with ``call_soon_threadsafe``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alerting.effects import Effect, Enqueue, apply
from alerting.model import OutboxItem
from monitor.store.base import MinuteCount, StaleEpoch, Store
from monitor.verdicts import SecondVerdict
from probes.base import Attempt

log = logging.getLogger("availmon.writer")


@dataclass(slots=True)
class SecondsJob:
    """What one or more final seconds leave to store."""

    verdicts: list[SecondVerdict]
    evidence: list[Attempt]
    counts: list[MinuteCount]
    #: the last second whose verdicts this job holds (None: none)
    through: int | None
    #: the same per service (services finalise independently)
    by_service: dict[str, int] = field(default_factory=dict)
    #: how many of the writes (verdicts, evidence, counts, recent verdicts) are done
    step: int = 0


@dataclass(slots=True)
class EffectsJob:
    """The policy's effects of one second, in order."""

    effects: list[Effect]
    submitted: float
    #: where to write them (the leader's fenced view); None: the writer's own store
    store: Store | None = None
    done: int = 0
    stored: list[OutboxItem] = field(default_factory=list)
    stuck_reported: bool = False
    #: the writer's `on_effects` hook has seen it
    prepared: bool = False

    @property
    def outbox(self) -> list[OutboxItem]:
        return [i for e in self.effects if isinstance(e, Enqueue) for i in e.items]


Job = SecondsJob | EffectsJob


class StoreWriter:
    def __init__(
        self,
        store: Store,
        *,
        on_applied: Callable[[Job], None] | None = None,
        on_stuck: Callable[[list[OutboxItem]], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        on_drop: Callable[[str, int], None] | None = None,
        on_stale: Callable[[], None] | None = None,
        on_effects: Callable[[EffectsJob], None] | None = None,
        max_evidence: int = 200_000,
        retry_min: float = 0.2,
        retry_max: float = 2.0,
        stuck_after: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.on_applied = on_applied
        self.on_stuck = on_stuck
        self.on_error = on_error
        self.on_drop = on_drop
        self.on_stale = on_stale
        #: called per effects job, in this thread, before its first write, until it returns
        #: (what it raises is a refused write: the job waits and the hook runs again): it
        #: may complete the job with what only the store knows (the Sev-1 case sheet, from
        #: the seconds' evidence already written). It must not change the job's effects or
        #: their items in place (`report_stuck` reads them from another thread): it assigns
        #: `job.effects` a new list, with new items where they change
        self.on_effects = on_effects
        #: also keep the verdicts in full for the leader's combiner (a shared store)
        self.recent = store.shared
        self.max_evidence = max_evidence
        #: what waits, by kind (kept in step with the queue, under `_cond`)
        self._pending: collections.Counter[str] = collections.Counter()
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.stuck_after = stuck_after
        self._monotonic = monotonic
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        #: close() gave up waiting: the thread stops at its next failure
        self._abandoned = False
        self._thread: threading.Thread | None = None
        #: the last second whose verdicts are in the store (over all services, and each's)
        self.durable_through: int | None = None
        self.durable: dict[str, int] = {}
        #: why the store refuses the head job, and since when (monotonic); None: it does not
        self.refusing: tuple[str, float] | None = None
        #: when the write in progress began (None: none is): a store can make a call wait
        #: (SQLite's busy timeout) before it refuses
        self._busy_since: float | None = None
        self.errors = 0

    # ------------------------------------------------------------------ the loop's side

    def submit_seconds(
        self,
        verdicts: Sequence[SecondVerdict],
        evidence: Sequence[Attempt],
        counts: Sequence[MinuteCount],
    ) -> None:
        if not (verdicts or evidence or counts):
            return
        kept = list(evidence)
        with self._cond:
            room = self.max_evidence - self._pending["evidence"]
        if len(kept) > room:
            dropped = len(kept) - max(room, 0)
            kept = kept[: max(room, 0)]
            if self.on_drop is not None:
                self.on_drop("evidence", dropped)
        through = max((v.second for v in verdicts), default=None)
        by_service: dict[str, int] = {}
        for v in verdicts:
            if v.second > by_service.get(v.service, v.second - 1):
                by_service[v.service] = v.second
        self._put(SecondsJob(list(verdicts), kept, list(counts), through, by_service))

    def submit_effects(self, effects: Sequence[Effect], store: Store | None = None) -> None:
        if effects:
            self._put(EffectsJob(list(effects), self._monotonic(), store))

    def pending(self) -> dict[str, int]:
        """What waits to be written, by kind (verdicts, evidence, counts, effects)."""
        with self._cond:
            return {k: self._pending[k] for k in ("verdicts", "evidence", "counts", "effects")}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="availmon-store-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float) -> bool:
        """Write what is queued (for at most `timeout` s), then stop; True when all of it
        went in. Blocks: call it from a thread, not the loop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            alive = self._thread.is_alive()
            if alive:
                with self._cond:
                    self._abandoned = True
                    self._cond.notify_all()
        else:
            alive = False
            self.drain(timeout)
        with self._cond:
            left = len(self._queue)
        if left or alive:
            log.error("store writer stopped with %d jobs not written: %s", left, self.pending())
        return not left and not alive

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted so far is written; True when it was. Blocks."""
        deadline = self._monotonic() + timeout
        with self._cond:
            while self._queue:
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    # ------------------------------------------------------------------ the thread

    def _put(self, job: Job) -> None:
        with self._cond:
            self._queue.append(job)
            if isinstance(job, SecondsJob):
                self._pending["verdicts"] += len(job.verdicts)
                self._pending["evidence"] += len(job.evidence)
                self._pending["counts"] += len(job.counts)
            else:
                self._pending["effects"] += len(job.effects)
            self._cond.notify_all()

    def _written(self, kind: str, n: int) -> None:
        with self._cond:
            self._pending[kind] -= n

    def _run(self) -> None:
        delay = self.retry_min
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing, and everything is written
                job = self._coalesce()
            if self._apply(job):
                delay = self.retry_min
                continue
            with self._cond:
                if self._abandoned:
                    return
                self._cond.wait(delay)
            delay = min(delay * 2, self.retry_max)

    def monotonic(self) -> float:
        """The writer's clock (what `refusing` is measured on)."""
        return self._monotonic()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, timeout: float) -> bool:
        """For a writer that was never started (tests, tools): write the queue on the
        caller's thread; True when all of it went in."""
        deadline = self._monotonic() + timeout
        while self._queue and self._monotonic() < deadline:
            with self._cond:
                job = self._coalesce()
            if not self._apply(job):
                time.sleep(self.retry_min)
        return not self._queue

    def _coalesce(self) -> Job:
        """The head job; consecutive SecondsJobs not yet begun are merged into it."""
        head = self._queue[0]
        if not isinstance(head, SecondsJob) or head.step:
            return head
        while len(self._queue) > 1:
            nxt = self._queue[1]
            if not isinstance(nxt, SecondsJob) or nxt.step:
                break
            del self._queue[1]
            head.verdicts += nxt.verdicts
            head.evidence += nxt.evidence
            head.counts += nxt.counts
            if nxt.through is not None:
                head.through = max(head.through or nxt.through, nxt.through)
            for service, second in nxt.by_service.items():
                head.by_service[service] = max(head.by_service.get(service, second), second)
        return head

    def trouble(self) -> tuple[str, float] | None:
        """(what is wrong, since when on `monotonic()`) while the store refuses writes or a
        write has been waiting on it for more than a second; None while it keeps up."""
        if self.refusing is not None:
            return self.refusing
        busy = self._busy_since
        if busy is not None and self._monotonic() - busy > 1.0:
            return ("a write is waiting on the store", busy)
        return None

    def _apply(self, job: Job) -> bool:
        """Write the rest of `job`; True when all of it is in the store."""
        self._busy_since = self._monotonic()
        try:
            if isinstance(job, SecondsJob):
                self._seconds(job)
            else:
                self._effects(job)
        except StaleEpoch as exc:
            self._busy_since = None
            self._drop_stale(job, exc)
            return True
        except Exception as exc:
            self._busy_since = None
            self.errors += 1
            reason = _one_line(exc)
            if self.refusing is None:
                self.refusing = (reason, self._monotonic())
                log.warning(
                    "store refuses writes (%s: %s); keeping them and retrying",
                    type(exc).__name__,
                    reason,
                )
            else:
                self.refusing = (reason, self.refusing[1])
            if self.on_error is not None:
                self.on_error("seconds" if isinstance(job, SecondsJob) else "effects", exc)
            self.report_stuck()
            return False
        self._busy_since = None
        if self.refusing is not None:
            seconds = self._monotonic() - self.refusing[1]
            log.warning("store takes writes again after %.1f s", seconds)
            self.refusing = None
        with self._cond:
            self._queue.popleft()
            self._cond.notify_all()
        if isinstance(job, SecondsJob) and job.through is not None:
            self.durable_through = max(self.durable_through or job.through, job.through)
            for service, second in job.by_service.items():
                self.durable[service] = max(self.durable.get(service, second), second)
        if self.on_applied is not None:
            try:
                self.on_applied(job)
            except Exception:
                log.exception("store writer: on_applied failed")
        return True

    def _seconds(self, job: SecondsJob) -> None:
        if job.step < 1:
            if job.verdicts:
                self.store.write_verdicts(job.verdicts)
            job.step = 1
            self._written("verdicts", len(job.verdicts))
        if job.step < 2:
            if job.evidence:
                self.store.write_evidence(job.evidence)
            job.step = 2
            self._written("evidence", len(job.evidence))
        if job.step < 3:
            if job.counts:
                self.store.write_minute_counts(job.counts)
            job.step = 3
            self._written("counts", len(job.counts))
        if job.step < 4:
            if self.recent and job.verdicts:
                self.store.write_recent(job.verdicts)  # for the leader's combiner
            job.step = 4

    def _drop_stale(self, job: Job, exc: StaleEpoch) -> None:
        """A replaced leader's effects: dropped, never retried."""
        assert isinstance(job, EffectsJob)
        left = len(job.effects) - job.done
        log.warning("store writer: %d effects of a replaced leader dropped (%s)", left, exc)
        with self._cond:
            self._queue.popleft()
            self._pending["effects"] -= left
            self._cond.notify_all()
        if self.on_stale is not None:
            try:
                self.on_stale()
            except Exception:
                log.exception("store writer: on_stale failed")

    def _effects(self, job: EffectsJob) -> None:
        store = job.store if job.store is not None else self.store
        if not job.prepared:
            if self.on_effects is not None:
                before = len(job.effects)
                self.on_effects(job)
                with self._cond:
                    self._pending["effects"] += len(job.effects) - before
            job.prepared = True
        while job.done < len(job.effects):
            job.stored += apply(store, job.effects[job.done])
            job.done += 1
            self._written("effects", 1)

    def report_stuck(self) -> None:
        """Hand over, once each, the outbox items of effects that have waited longer than
        `stuck_after` (at the head or behind it). Any thread: the writer calls it after a
        failure, the daemon once a second (a store that blocks, e.g. SQLite's busy wait on
        a lock, holds the writer inside one call)."""
        if self.on_stuck is None:
            return
        now = self._monotonic()
        with self._cond:
            waiting = [
                j
                for j in self._queue
                if isinstance(j, EffectsJob)
                and not j.stuck_reported
                and now - j.submitted >= self.stuck_after
            ]
            for job in waiting:
                job.stuck_reported = True
        for job in waiting:
            items = job.outbox
            if items:
                try:
                    self.on_stuck(items)
                except Exception:
                    log.exception("store writer: on_stuck failed")


def _one_line(exc: BaseException) -> str:
    """What the store said, in one line ("database is locked")."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
