"""The outbox dispatcher: delivers queued incident events to notifiers, retrying with backoff.

The policy writes an `OutboxItem` to the store (then calls `Dispatcher.wake()`); this
module only reads the store, sends, and records the outcome. Rules:

- Per (incident, notifier) pair, items go out in id order: `store.claim_due()` returns only
  the head of each pair, so an update never overtakes a trigger that waits to be retried,
  and claims it for this dispatcher (`holder`) for its longest send plus `CLAIM_MARGIN`:
  two instances (a replaced leader that does not know it yet) never send one row at once.
- Notifiers never wait for each other: every pair is its own task, every notifier has
  its own concurrency limit and every send its own deadline, so one hung or failing
  receiver delays only itself.
- A retryable failure waits ``uniform(0, min(max_backoff, base_backoff · 2^(tries-1)))``
  (exponential backoff, full jitter) or the receiver's Retry-After; a permanent failure,
  or ``max_tries`` tries, marks the item failed. A page (tiers ``critical`` and
  ``escalation``) waits at most the notifier's ``page_retry_max_seconds`` (10 s) between
  tries, so it goes out within about that long once the receiver answers again, and is
  given up only after both ``max_tries`` tries and ``page_give_up_after_seconds`` (1 h).
  Every outcome goes to the incident's timeline (``notified`` | ``notify_retry`` |
  ``notify_failed``) and to `on_result`.
- Durable and at-least-once: an item is in the store before its first try; a daemon
  killed before recording the outcome sends it again after restart.
- Paged from memory: when the store refuses the write of new items for a while
  (monitor/writer.py), `page_from_memory` sends them before they are stored, so a Critical
  Issue is not held back by a locked or full store. Such an item is known by its key
  (incident, notifier, event, seq): once the writer has stored it, `reconcile` gives its id
  and the outcome is recorded on the stored row, which no pass ever sends again.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from alerting.model import OutboxState
from alerting.notifiers.base import Notifier, NotifierBase, Restorable, TransportError
from monitor.clock import Clock
from monitor.store.base import IncidentEvent, OutboxItem, Store

log = logging.getLogger("availmon.alerting.outbox")

#: a claimed outbox row stays the claimer's this long past its longest send
CLAIM_MARGIN = 15.0

#: a Retry-After longer than this is clipped: a page must not wait a day on a header
MAX_RETRY_AFTER = 3600.0
#: the tiers whose items are pages: their retries are capped (`page_retry_max_seconds`)
PAGE_TIERS = frozenset({"critical", "escalation"})

Pair = tuple[int, str]
#: an item's identity before it has a row id: (incident, notifier, event, seq)
Key = tuple[int, str, str, Any]


def item_key(item: OutboxItem) -> Key:
    return (item.incident_id, item.notifier, item.event, item.payload.get("seq"))


@dataclass(slots=True)
class _MemoryPage:
    """An item sent before the store held it."""

    item: OutboxItem
    final: OutboxItem | None = None  # the item as delivered (sent or failed)
    events: list[IncidentEvent] = field(default_factory=list)
    stored_id: int | None = None


class Dispatcher:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        *,
        on_result: Callable[[str, str], None] | None = None,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        rng: random.Random | None = None,
        concurrency: int = 4,
        poll_interval: float = 5.0,
        batch: int = 100,
        holder: str | None = None,
    ) -> None:
        """`on_result(notifier, "sent" | "retry" | "failed")` feeds the metric
        ``availmon_notifications_total``. `poll_interval` bounds how long an item
        enqueued without `wake()` (e.g. by the CLI, another process) waits."""
        self.store = store
        self.notifiers = notifiers
        #: who claims the outbox rows: the vantage, so that a restarted instance takes its
        #: own claims over at once (a row claimed just before a crash is not held back)
        self.holder = holder or "availmon"
        self.clock = clock
        self.on_result = on_result
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.rng = rng or random.Random()
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.batch = batch
        self._inflight: dict[Pair, asyncio.Task[None]] = {}
        # pairs whose delivery finished while a pass was reading the store: that read may
        # predate the outcome, so the pass must not start them again from it
        self._finished: set[Pair] = set()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._retry_at: list[float] = []  # heap of next_attempt_at this process scheduled
        self._wake = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._timeline_ok = True
        self._loop: asyncio.AbstractEventLoop | None = None
        # pages sent from memory, by key; read by the writer thread too, hence the lock
        self._memory: dict[Key, _MemoryPage] = {}
        self._memory_lock = threading.Lock()
        self._memory_tasks: set[asyncio.Task[None]] = set()
        #: notifiers a reload replaced, closed once their sends have ended
        self._closing: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ public

    def wake(self) -> None:
        """New items are in the store: look now instead of at the next poll. Thread-safe:
        human actions run in worker threads (the API) and the store writer calls it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._wake.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            # asyncio.Event is not thread-safe: set it on its own loop (which may be
            # closing under a late API worker: nothing left to wake then)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    def page_from_memory(self, items: Sequence[OutboxItem]) -> None:
        """Send `items` (not in the store yet) now. Thread-safe: the store writer calls it."""
        fresh: list[_MemoryPage] = []
        with self._memory_lock:
            for item in items:
                key = item_key(item)
                if key not in self._memory:
                    self._memory[key] = page = _MemoryPage(item)
                    fresh.append(page)
        if fresh and self._loop is not None:
            self._loop.call_soon_threadsafe(self._start_memory, fresh)

    def reconcile(self, stored: Sequence[OutboxItem]) -> None:
        """The writer stored these items: tie pages sent from memory to their rows.
        Thread-safe."""
        with self._memory_lock:
            matched = False
            for item in stored:
                page = self._memory.get(item_key(item))
                if page is not None:
                    page.stored_id = item.id
                    matched = True
        if matched and self._loop is not None:
            self._loop.call_soon_threadsafe(self._settle_soon)

    async def run(self) -> None:
        """Deliver until cancelled."""
        self._loop = asyncio.get_running_loop()
        try:
            await self.restore()
        except Exception:
            # without it Alertmanager re-sends resume at the next event; delivery goes on
            log.exception("outbox: restoring notifier state failed")
        while True:
            self._wake.clear()
            await self._settle()
            try:
                _, _, pass_time = await self._pass()
            except Exception:
                # a store hiccup must not end delivery for good
                log.exception("outbox: reading due items failed")
                pass_time = self.clock.wall()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_for(pass_time))

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 (a budget, not a cancel scope)
        """Send everything due now (and whatever becomes due meanwhile) and wait for it.

        True when nothing due is left; False when `timeout` (real seconds) ran out first.
        For shutdown and for tests driven by a FakeClock."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            started, skipped, _ = await self._pass()
            tasks = list(self._inflight.values())
            if not tasks and not started and not skipped:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if tasks:
                await asyncio.wait(tasks, timeout=remaining)

    async def restore(self, notifiers: Mapping[str, Notifier] | None = None) -> None:
        """Hand stateful notifiers (Alertmanager) what they delivered before a restart
        (or before a reload replaced them)."""
        given = self.notifiers if notifiers is None else notifiers
        stateful = {n: x for n, x in given.items() if isinstance(x, Restorable)}
        if not stateful:
            return
        items = await asyncio.to_thread(self.store.outbox)
        for name, notifier in stateful.items():
            sent = [i for i in items if i.notifier == name and i.state == OutboxState.SENT]
            try:
                notifier.restore(sent)
            except Exception:
                log.exception("outbox: notifier %s could not restore its state", name)

    async def replace_notifiers(self, notifiers: Mapping[str, Notifier]) -> None:
        """A reload's notifiers (monitor/reload.py): stateful ones (Alertmanager) first
        learn what was delivered, then they take over; sends in flight finish with the
        notifier they started with, which is then closed. Items pending for a notifier
        the reload removed fail as "not configured" when they come due."""
        old = self.notifiers
        await self.restore(notifiers)
        self.notifiers = notifiers
        busy = [*self._inflight.values(), *self._memory_tasks]
        task = asyncio.get_running_loop().create_task(self._close_later(old, busy))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self.wake()

    async def _close_later(
        self, notifiers: Mapping[str, Notifier], busy: Sequence[asyncio.Task[None]]
    ) -> None:
        if busy:
            await asyncio.wait(busy)
        await self._close_all(notifiers)

    async def _close_all(self, notifiers: Mapping[str, Notifier]) -> None:
        for name, notifier in notifiers.items():
            try:
                await notifier.close()
            except Exception:
                log.exception("outbox: closing notifier %s failed", name)

    async def close(self) -> None:
        """Stop in-flight sends (their items stay pending) and close the notifiers."""
        tasks = [*self._inflight.values(), *self._memory_tasks]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # a task cancelled before it ever ran never reached its own cleanup
        self._inflight.clear()
        # notifiers a reload replaced close as soon as their sends (cancelled above) end
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self._close_all(self.notifiers)

    def claim_seconds(self) -> float:
        """How long a claimed row is this dispatcher's: its longest send and a margin (a
        row claimed by an instance that died is taken over after this)."""
        longest = max((n.config.timeout_seconds for n in self.notifiers.values()), default=10.0)
        return longest + CLAIM_MARGIN

    def backoff(self, tries: int, retry_after: float | None, cap: float | None = None) -> float:
        """Seconds before try number `tries + 1` (at most `cap`, unless the receiver's
        Retry-After asks for longer: it is honoured)."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        limit = min(self.max_backoff, self.base_backoff * 2 ** min(tries - 1, 62))
        if cap is not None:
            limit = min(limit, cap)
        return self.rng.uniform(0, limit)

    # ------------------------------------------------------------------ internals

    async def _pass(self) -> tuple[int, int, float]:
        """Start a task for every due item whose pair is idle; (started, skipped, now)."""
        async with self._pass_lock:
            self._finished.clear()
            now = self.clock.wall()
            # due() gives one row per pair: asking for the in-flight pairs on top of the batch
            # keeps a notifier with many hung pairs from hiding every other notifier's items
            limit = self.batch + len(self._inflight)
            # claimed for this dispatcher: another instance (a leader that was replaced and
            # does not know it yet) cannot take the same rows while they are being sent
            items = await asyncio.to_thread(
                self.store.claim_due, now, self.holder, self.claim_seconds(), limit
            )
            with self._memory_lock:
                memory = set(self._memory)
            started = skipped = 0
            for item in items:
                if item_key(item) in memory:
                    continue  # sent from memory; its outcome is being recorded
                pair = (item.incident_id, item.notifier)
                if pair in self._inflight:
                    continue
                if pair in self._finished:
                    skipped += 1
                    continue
                self._inflight[pair] = asyncio.create_task(
                    self._deliver(item, pair), name=f"outbox-{item.notifier}-{item.id}"
                )
                started += 1
            return started, skipped, now

    def _sleep_for(self, pass_time: float) -> float:
        while self._retry_at and self._retry_at[0] <= pass_time:
            heapq.heappop(self._retry_at)
        if not self._retry_at:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, self._retry_at[0] - self.clock.wall()))

    def _limit(self, name: str) -> asyncio.Semaphore:
        if name not in self._limits:
            self._limits[name] = asyncio.Semaphore(self.concurrency)
        return self._limits[name]

    async def _deliver(self, item: OutboxItem, pair: Pair) -> None:
        try:
            notifier = self.notifiers.get(item.notifier)
            if notifier is None:
                await self._record(
                    item,
                    TransportError(f"notifier {item.notifier!r} is not configured", permanent=True),
                    counted=False,
                )
                return
            async with self._limit(item.notifier):
                error = await self._send(notifier, item)
            await self._record(item, error, max_tries=notifier.config.max_tries)
        except Exception:
            log.exception("outbox: recording item %s failed; it stays pending", item.id)
        finally:
            del self._inflight[pair]
            self._finished.add(pair)
            self._wake.set()

    async def _send(self, notifier: Notifier, item: OutboxItem) -> TransportError | None:
        # the notifier's own timeout covers one request; this deadline covers a send with
        # several round trips (SMTP) and a notifier that ignores its timeout
        deadline = 2 * notifier.config.timeout_seconds + 1
        try:
            await asyncio.wait_for(notifier.send(item), deadline)
        except TransportError as exc:
            return exc
        except TimeoutError:
            return TransportError(f"send did not finish within {deadline:g}s")
        except Exception as exc:
            log.exception("outbox: notifier %s raised on item %s", item.notifier, item.id)
            return TransportError(f"internal error: {type(exc).__name__}")
        return None

    def _start_memory(self, pages: list[_MemoryPage]) -> None:
        for page in pages:
            log.warning(
                "outbox: store refuses writes; paging %s %s for incident %s from memory",
                page.item.notifier, page.item.event, page.item.incident_id,
            )  # fmt: skip
            task = asyncio.create_task(self._deliver_memory(page), name="outbox-memory")
            self._memory_tasks.add(task)
            task.add_done_callback(self._memory_tasks.discard)

    async def _deliver_memory(self, page: _MemoryPage) -> None:
        """Deliver one page with the usual retries, keeping the outcome in memory."""
        item = page.item
        notifier = self.notifiers.get(item.notifier)
        while True:
            if notifier is None:
                error: TransportError | None = TransportError(
                    f"notifier {item.notifier!r} is not configured", permanent=True
                )
                max_tries = 1
            else:
                async with self._limit(item.notifier):
                    error = await self._send(notifier, item)
                max_tries = notifier.config.max_tries
            done, event, outcome = self._outcome(
                item, error, max_tries, notifier is not None, notifier.config if notifier else None
            )
            page.events.append(event)
            self._report(item, outcome, event)
            item = done
            if outcome != "retry":
                break
            await asyncio.sleep(max(0.0, done.next_attempt_at - self.clock.wall()))
        page.final = item
        await self._settle()

    def _settle_soon(self) -> None:
        task = asyncio.create_task(self._settle(), name="outbox-settle")
        self._memory_tasks.add(task)
        task.add_done_callback(self._memory_tasks.discard)

    async def _settle(self) -> None:
        """Record the outcome of pages sent from memory on their stored rows."""
        with self._memory_lock:
            ready = [(k, p) for k, p in self._memory.items() if p.final and p.stored_id]
        for key, page in ready:
            assert page.final is not None and page.stored_id is not None
            try:
                await asyncio.to_thread(
                    self.store.update_outbox, replace(page.final, id=page.stored_id)
                )
            except Exception as exc:
                log.warning("outbox: recording a page sent from memory failed: %r", exc)
                return  # tried again at the next pass
            with self._memory_lock:
                self._memory.pop(key, None)
            for event in page.events:
                await self._timeline(replace(event, data={**event.data, "from_memory": True}))

    def _outcome(
        self,
        item: OutboxItem,
        error: TransportError | None,
        max_tries: int,
        counted: bool,
        config: NotifierBase | None = None,
    ) -> tuple[OutboxItem, IncidentEvent, str]:
        """The item after one try, its timeline event, and "sent" | "retry" | "failed"."""
        now = self.clock.wall()
        tries = item.tries + 1 if counted else item.tries
        data: dict[str, object] = {"notifier": item.notifier, "event": item.event, "tries": tries}
        page = config is not None and item.payload.get("tier") in PAGE_TIERS
        cap = config.page_retry_max_seconds if page and config is not None else None
        exhausted = tries >= max_tries
        if (
            page
            and config is not None
            and now - item.created_at < config.page_give_up_after_seconds
        ):
            exhausted = False  # a page keeps trying for its whole time budget
        if error is None:
            done = replace(item, tries=tries, state=OutboxState.SENT, sent_at=now, last_error=None)
            kind, outcome = "notified", "sent"
        elif error.permanent or exhausted:
            done = replace(item, tries=tries, state=OutboxState.FAILED, last_error=error.message)
            kind, outcome = "notify_failed", "failed"
            data["error"] = error.message
        else:
            at = now + self.backoff(tries, error.retry_after, cap)
            done = replace(item, tries=tries, next_attempt_at=at, last_error=error.message)
            kind, outcome = "notify_retry", "retry"
            data.update(error=error.message, next_attempt_at=at)
        return done, IncidentEvent(item.incident_id, now, kind, data), outcome

    def _report(self, item: OutboxItem, outcome: str, event: IncidentEvent) -> None:
        """The log line and the metric of one try."""
        context = {"incident": item.incident_id, "notifier": item.notifier}
        if outcome == "sent":
            log.info(
                "outbox: %s %s for incident %s sent",
                item.notifier, item.event, item.incident_id, extra=context,
            )  # fmt: skip
        else:
            log.warning(
                "outbox: %s %s for incident %s: %s (try %s, %s)",
                item.notifier, item.event, item.incident_id, event.data.get("error"),
                event.data.get("tries"), outcome, extra=context,
            )  # fmt: skip
        if self.on_result is not None:
            try:
                self.on_result(item.notifier, outcome)
            except Exception:
                log.exception("outbox: on_result callback failed")

    async def _record(
        self,
        item: OutboxItem,
        error: TransportError | None,
        *,
        max_tries: int = 1,
        counted: bool = True,
    ) -> None:
        notifier = self.notifiers.get(item.notifier)
        config = notifier.config if notifier is not None else None
        done, event, outcome = self._outcome(item, error, max_tries, counted, config)
        if outcome == "retry":
            heapq.heappush(self._retry_at, done.next_attempt_at)
        await asyncio.to_thread(self.store.update_outbox, done)
        self._report(item, outcome, event)
        await self._timeline(event)

    async def _timeline(self, event: IncidentEvent) -> None:
        try:
            await asyncio.to_thread(self.store.add_event, event)
        except Exception as exc:
            # the delivery itself is recorded in the outbox row; a timeline line is extra
            if self._timeline_ok:
                log.warning("outbox: cannot add %s to incident timeline: %r", event.kind, exc)
            self._timeline_ok = False
