"""The running daemon: wires launcher → detector → (store, metrics, policy) → outbox.

Data flows one way (ARCHITECTURE.md "Data flow"). The detector's sink runs on the event
loop once per final second and only does in-memory work: metrics, the policy (a state
machine whose writes come out as effects, alerting/effects.py) and two submissions to the
store writer (monitor/writer.py), which writes the second and then its effects in a
thread of its own, in order, retrying what the store refuses. Every other store access is
in a worker thread too (`asyncio.to_thread`): what people did to incidents (API, CLI) is
read once a second and handed to the policy (`Policy.absorb`). So the loop that measures
the seconds never waits on the store.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerting.case import CASE_EVENT, read_evidence
from alerting.case import compose as compose_case
from alerting.case import render_text as render_case
from alerting.effects import AddEvent, CreateIncident, EffectLog, Enqueue, UpdateIncident
from alerting.escalation import iso
from alerting.incidents import Incidents
from alerting.model import Incident, IncidentEvent, IncidentState, OutboxItem, Severity
from alerting.notifiers import Notifier, build_notifiers
from alerting.outbox import PAGE_TIERS, Dispatcher
from alerting.policy import Policy
from monitor.blocklist import BlocklistRunner, same_configs
from monitor.clock import Clock, SystemClock, ThreadShare
from monitor.combiner import Combiner, stopped_key
from monitor.config import Settings, load, split_listen
from monitor.detector import Detector
from monitor.gcpacer import start_pacer
from monitor.intervals import Interval, contains, month_of, overlap
from monitor.launcher import Launcher, Plan, plan_probes
from monitor.leader import LEASE, LeaderElector
from monitor.metrics import Metrics
from monitor.overload import OverloadWatch
from monitor.preflight import check_secrets
from monitor.reload import Changes, Handover, ReloadResult, compare, restart_needed
from monitor.reports import warm as warm_report_templates
from monitor.reports.schedule import ReportJob
from monitor.schema import ConfigError
from monitor.seconds import verdict_counts
from monitor.store import Store, open_store
from monitor.store.base import MaintenanceWindow, MinuteCount, NotFound, excluded_spans
from monitor.store.guard import guarded
from monitor.verdicts import COMBINED, SERVICE_CHANNEL, SecondVerdict, UnknownReason, Verdict
from monitor.watchdog import LoopWatchdog
from monitor.web import make_public_app, make_web_app
from monitor.web.live import LiveSeconds
from monitor.writer import EffectsJob, Job, SecondsJob, StoreWriter
from probes.base import Attempt, ProbeConfigError
from probes.compat_asyncio import backport_transport_cycle_fix

log = logging.getLogger("availmon")

#: how long the stop waits for the store to take what is queued
STOP_WRITE_TIMEOUT = 10.0
#: how often the store is read for people's actions on the policy's incidents
POLL_INCIDENTS_EVERY = 1.0
#: a store refusing writes this long turns /readyz to 503
STORE_UNREADY_AFTER = 5.0
#: the leader on a shared store: how often it combines the vantages' new seconds, and how
#: long their full verdicts are kept for it (pruned every ten minutes)
COMBINE_EVERY = 0.5
RECENT_KEPT = 3600
PRUNE_RECENT_EVERY = 600.0
#: the id prefix of the leader's blocklist check jobs
BLOCKLIST_JOB = "blocklist/"


def _read_incidents(store: Store, ids: list[int]) -> dict[int, Incident | None]:
    out: dict[int, Incident | None] = {}
    for incident_id in ids:
        try:
            out[incident_id] = store.get_incident(incident_id)
        except NotFound:
            out[incident_id] = None
    return out


async def _close_probes(plans: list[Plan]) -> None:
    for plan in plans:
        try:
            await plan.probe.close()
        except Exception:
            log.exception("closing probe %s failed", plan.name)


class DaemonError(Exception):
    """The daemon cannot start (listener in use, store unusable); str() is one line."""


class Daemon:
    """One vantage point's monitor. `start()` then `stop()`; `run()` until a signal."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        store: Store | None = None,
        serve_http: bool = True,
        config_path: str | Path | None = None,
    ) -> None:
        self.settings = settings
        #: the file `reload()` reads again (None: started without one, nothing to reload)
        self.config_path = None if config_path is None else Path(config_path)
        self.clock = clock or SystemClock()
        self.vantage = settings.monitor.vantage
        self.metrics = metrics or Metrics(vantage=self.vantage)
        self.store: Store | None = None if store is None else guarded(store)
        self.serve_http = serve_http
        self.started_at = self.clock.wall()
        self._started = False  # start() finished: stop() logs the stop
        self.last_final: dict[str, int] = {}
        self.last_verdicts: dict[tuple[str, str], SecondVerdict] = {}
        #: per service, the last verdict per channel that is in the store: what the API
        #: shows, so that nothing it shows can be lost by a crash (SIGKILL)
        self.stored_verdicts: dict[str, dict[str, SecondVerdict]] = {}
        #: extra callbacks (second, verdicts), e.g. the demo's view
        self.listeners: list[Callable[[int, list[SecondVerdict]], None]] = []
        self._pending_counts: collections.Counter[tuple[str, str, str, int, str]] = (
            collections.Counter()
        )
        self._maintenance: list[MaintenanceWindow] = []
        #: service → the seconds its maintenance windows exclude (sorted, disjoint)
        self._excluded_spans: dict[str, list[Interval]] = {}
        self._month: dict[str, tuple[int, int]] = {}
        #: per service, this month's (unavailable seconds, error budget seconds), as of the
        #: last housekeeping (`_refresh_month`)
        self.month: dict[str, tuple[int, float]] = {}
        #: the leader's unresolved incidents: id -> (service, severity)
        self._open_incidents: dict[int, tuple[str, str]] = {}
        self._month_recent: dict[str, collections.deque[int]] = collections.defaultdict(
            collections.deque
        )
        #: seconds up to this one were stored before this start (or are the restart gap)
        self._start_floor = 0
        self._effects = EffectLog()
        self.writer: StoreWriter | None = (
            None if self.store is None else self._new_writer(self.store)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.overload = OverloadWatch()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        #: the public status page's own listener (status.listen), if any
        self._public_runner: web.AppRunner | None = None
        #: the live strips' ring and their watchers (monitor/web/live.py)
        self.live = LiveSeconds()
        self._session: aiohttp.ClientSession | None = None
        self.scheduler: AsyncIOScheduler | None = None
        #: the leader's parts (monitor/leader.py): the policy, the dispatcher and the
        #: report jobs run only while this instance leads, writing through `_fenced`
        self.elector: LeaderElector | None = None
        self._fenced: Store | None = None
        self._leader_tasks: list[asyncio.Task[Any]] = []
        #: several vantages share the store: the leader's policy judges the seconds the
        #: combiner makes of every vantage's (monitor/combiner.py), not its own detector's
        self._combining = False
        #: the last combination lags (seconds after a second's end), for bench/
        self.combine_lags: collections.deque[float] = collections.deque(maxlen=100_000)
        self.policy: Policy | None = None
        #: the leader's blocklist (DNSBL) checks (monitor/blocklist.py)
        self.blocklists: BlocklistRunner | None = None
        self.incidents: Incidents | None = None
        self.dispatcher: Dispatcher | None = None
        self.detector: Detector | None = None
        self.launcher: Launcher | None = None
        self.watchdog: LoopWatchdog | None = None
        # a reload (monitor/reload.py): the detector built by the latest one carries this
        # generation; the one before it, while it finishes its seconds, the one before
        self._generation = 0
        self._handover: Handover | None = None
        self._handover_task: asyncio.Task[None] | None = None
        self._retiring: list[Launcher] = []
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[ReloadResult]] = set()
        #: services a reload added → the first second measured for them
        self._measured_from: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        if self.store is None:
            self.store = await asyncio.to_thread(open_store, s.store.url, s.store.password_value())
        store = self.store
        if self.writer is None:
            self.writer = self._new_writer(store)
        self._declare(s)
        self.metrics.leader.labels(self.vantage).set(0)

        # Alerting: a lone instance (SQLite: always) leads before its first second, and
        # its incidents are restored before the first new second arrives.
        self._session = aiohttp.ClientSession()
        self.incidents = Incidents(s, store, self.clock, on_outbox=self._wake_dispatcher)
        self._combining = store.shared
        self.elector = LeaderElector(
            store,
            self.vantage,
            self._leadership,
            ttl=s.monitor.lease_ttl_seconds,
            renew=s.monitor.lease_renew_seconds,
        )
        await self.elector.attempt()  # leading: the config's maintenance windows are stored
        self._set_maintenance(await asyncio.to_thread(store.list_maintenance))

        start_second = int(self.clock.wall()) + 1
        await asyncio.to_thread(self._fill_restart_gap, start_second)
        self._start_floor = start_second - 1
        self.writer.start()
        await asyncio.to_thread(self._refresh_month)
        await asyncio.to_thread(self._refresh_incident_gauge)

        # the same recording threshold as the launcher's own default watchdog
        self.watchdog = LoopWatchdog(
            self.clock,
            threshold=min(0.05, s.monitor.stall_threshold_ms / 2000),
            on_lag=self.metrics.loop_lag.observe,
        )
        self.detector = Detector(
            s.services,
            self.vantage,
            functools.partial(self._route, self._generation),
            start_second=start_second,
        )
        self.launcher = Launcher(
            s,
            self.clock,
            self.detector,
            on_attempt=self._on_attempt,
            on_skip=self.metrics.observe_skip,
            watchdog=self.watchdog,
        )
        if self.serve_http:
            await self._start_http()
        # the report template's compile() holds the GIL ~0.1 s: done before the first launch
        await asyncio.to_thread(warm_report_templates)
        await self.watchdog.start()
        await self.launcher.start()
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="poll-incidents"))
        self._tasks.append(asyncio.create_task(self.elector.run(), name="leader-lease"))

        self.scheduler = AsyncIOScheduler(timezone=ZoneInfo("UTC"))
        self.scheduler.add_job(self._housekeeping, "interval", seconds=30, id="housekeeping")
        if self.elector.leading:
            self._install_leader_jobs()
        self.scheduler.start()
        self._started = True
        self.metrics.reload_time.set(self.clock.wall())
        log.info(
            "availmon started: vantage=%s services=%s listen=%s store=%s",
            self.vantage,
            ",".join(x.name for x in s.services),
            s.monitor.listen,
            s.store.url.split("://")[0],
        )

    async def stop(self) -> None:
        self._stopping.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in self._reloads:
            task.cancel()
        await asyncio.gather(*self._reloads, return_exceptions=True)
        if self._handover_task is not None:
            self._handover_task.cancel()
            await asyncio.gather(self._handover_task, return_exceptions=True)
        for old in self._retiring:
            await old.stop()  # a reload's hand-over cut short: its held seconds are lost
        self._retiring.clear()
        if self.launcher is not None:
            await self.launcher.stop()
        if self.watchdog is not None:
            await self.watchdog.stop()
        for task in [*self._tasks, *self._leader_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._leader_tasks, return_exceptions=True)
        self._tasks.clear()
        self._leader_tasks.clear()
        if self.writer is not None:
            # what the last seconds and the policy left, before the pages are drained
            await asyncio.to_thread(self.writer.close, STOP_WRITE_TIMEOUT)
            if self._started and self.store is not None and self.store.shared:
                # the leader need not wait for this vantage's next seconds
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(
                        self.store.set_state, stopped_key(self.vantage), self.clock.wall()
                    )
        if self.dispatcher is not None:
            # give pages already queued (a resolve on shutdown, say) a moment to go out;
            # what does not is sent after the next start
            await self.dispatcher.drain(5)
            await self.dispatcher.close()
        if self.elector is not None:
            await self.elector.release()  # a successor need not wait for the lease to run out
        for runner in (self._runner, self._public_runner):
            if runner is not None:
                await runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if not self._started:
            return  # a start that failed said so itself, in one line
        last = {name: second for name, second in sorted(self.last_final.items())}
        log.info(
            "availmon stopped: last final second %s",
            ", ".join(f"{n} {iso(t)}" for n, t in last.items()) or "none",
        )

    async def run(self) -> None:
        """Run until SIGINT/SIGTERM (the `availmon run` process)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_soon, "SIGHUP")
        # Process-wide runtime tuning, only here (not in start(), which tests and benches
        # call in their own processes), each gated on the Python versions it was measured
        # on: 3.12's fix of a reference cycle in closed socket transports, backported to
        # 3.11 (probes/base.py), and the collector pacer (monitor/gcpacer.py), because
        # collector passes over thousands of attempts in flight made launches late.
        backport_transport_cycle_fix()
        try:
            await self.start()
        except BaseException:
            await self.stop()  # what start() opened (the notifiers' session, the store)
            raise
        pacer = start_pacer(self.clock, self.in_flight)
        try:
            await self._stopping.wait()
        finally:
            if pacer is not None:
                pacer.stop()
            await self.stop()

    def in_flight(self) -> int:
        """Attempts launched and not yet ended."""
        return sum(x.in_flight for x in self._launchers())

    def _launchers(self) -> list[Launcher]:
        """The launcher measuring now, and any a reload is retiring."""
        return [*self._retiring, *([self.launcher] if self.launcher is not None else [])]

    async def _start_http(self) -> None:
        self._runner = await self._listen(
            make_web_app(self), self.settings.monitor.listen, "monitor.listen"
        )
        public = self.settings.status.listen
        if public is not None:
            try:
                self._public_runner = await self._listen(
                    make_public_app(self), public, "status.listen"
                )
            except DaemonError:
                await self._runner.cleanup()
                self._runner = None
                raise

    async def _listen(self, app: web.Application, where: str, field: str) -> web.AppRunner:
        # open event streams end at the shutdown (monitor/web): a short grace for the rest
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, *split_listen(where))
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise DaemonError(f"{field}: cannot listen on {where}: {why}") from None
        return runner

    @property
    def http_port(self) -> int | None:
        """The port actually bound (useful with listen = "127.0.0.1:0")."""
        if self._runner is None:
            return None
        for address in self._runner.addresses:  # (host, port[, flow, scope]) per socket
            return int(address[1])
        return None

    # ------------------------------------------------------------------ leadership
    async def _leadership(self, epoch: int | None) -> None:
        """Take up (an epoch) or give up (None) the leader's parts: the policy, restored
        from the store; the dispatcher; the report and retention jobs. Every write they
        make goes through the store fenced at `epoch` (monitor/leader.py)."""
        self.metrics.leader.labels(self.vantage).set(0 if epoch is None else 1)
        self.metrics.leader_changes.inc()
        if epoch is None:
            await self._step_down()
            return
        assert self.store is not None and self._session is not None
        fenced = guarded(self.store.fenced(LEASE, epoch))
        dispatcher = Dispatcher(
            fenced,
            build_notifiers(self.settings.notifiers, self._session, self.clock),
            self.clock,
            on_result=lambda name, outcome: self.metrics.notifications.labels(name, outcome).inc(),
            holder=self.vantage,
        )
        effects = EffectLog()
        policy = Policy(
            self.settings,
            fenced,
            self.clock,
            on_outbox=dispatcher.wake,
            effects=effects,
            combined=self._combining,
        )
        await asyncio.to_thread(policy.restore)
        spells = await asyncio.to_thread(fenced.spells, None, None, None, True)
        self.blocklists = BlocklistRunner(self.settings.services, spells)
        self._warn_unwatched(self.blocklists.unwatched)
        self._effects, self._fenced = effects, fenced
        await asyncio.to_thread(self._sync_config_maintenance)
        self.metrics.lead(self._channels())
        for (service, severity), n in (await asyncio.to_thread(self._count_incidents)).items():
            self.metrics.incidents_total.labels(service, severity, COMBINED).inc(n)
        if self._started:  # a takeover: the gauges now, not at the next housekeeping
            await asyncio.to_thread(self._refresh_month)
            await asyncio.to_thread(self._refresh_incident_gauge)
        # published last: whoever sees this instance lead sees its gauges filled
        self.dispatcher, self.policy = dispatcher, policy
        self._leader_tasks.append(asyncio.create_task(dispatcher.run(), name="dispatcher"))
        if self._combining:
            start = {}
            for svc in self.settings.services:
                last = policy.last_second(svc.name)
                if last is not None:
                    start[svc.name] = last + 1
            combiner = Combiner(self.settings, self.store, self.clock, start)
            self._leader_tasks.append(
                asyncio.create_task(self._combine_loop(combiner), name="combiner")
            )
        if self.scheduler is not None:
            self._install_leader_jobs()

    async def _combine_loop(self, combiner: Combiner) -> None:
        """The leader, on a shared store: every vantage's seconds, combined by quorum,
        to the policy, in order (monitor/combiner.py); the buffer pruned now and then."""
        pruned = self.clock.monotonic()
        while True:
            await asyncio.sleep(COMBINE_EVERY)
            try:
                batch = await asyncio.to_thread(combiner.step)
            except Exception as exc:
                log.debug("combining verdicts failed: %r", exc)
                continue
            policy = self.policy
            if policy is None:
                return
            now = self.clock.wall()
            for _service, combined in batch:
                lag = now - (combined.second + 1)
                self.metrics.combine_lag.observe(lag)
                self.combine_lags.append(lag)
                for vantage in combined.late:
                    self.metrics.combine_late.labels(vantage).inc()
                self.metrics.observe_verdicts(combined.verdicts, COMBINED)
                try:
                    policy.on_second(combined.second, combined.verdicts)
                except Exception:  # a policy bug must never stop the combining
                    log.exception("incident policy failed on second %d", combined.second)
            if self.writer is not None:
                self.writer.submit_effects(self._effects.take(), self._fenced)
            if self.clock.monotonic() - pruned >= PRUNE_RECENT_EVERY and self.store is not None:
                pruned = self.clock.monotonic()
                before = int(self.clock.wall()) - RECENT_KEPT
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.store.prune_recent, before)

    async def _step_down(self) -> None:
        self.policy = None
        self._fenced = None
        self.metrics.unlead(self._channels())
        self._remove_blocklist_jobs()
        self.blocklists = None
        tasks, self._leader_tasks = self._leader_tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        dispatcher, self.dispatcher = self.dispatcher, None
        if dispatcher is not None:
            await dispatcher.close()  # its claims run out; the successor sends what is left
        if self.scheduler is not None:
            for job_id in ("retention", "monthly-report"):
                if self.scheduler.get_job(job_id) is not None:
                    self.scheduler.remove_job(job_id)

    def _channels(self) -> list[tuple[str, list[str]]]:
        return [(svc.name, svc.channels) for svc in self.settings.services]

    def _install_leader_jobs(self) -> None:
        assert self.scheduler is not None and self.store is not None
        self.scheduler.add_job(
            self._prune, "cron", hour=3, minute=17, id="retention", replace_existing=True
        )
        job = ReportJob(self.settings, self.store, self.clock)
        job.install(self.scheduler)
        self._leader_tasks.append(asyncio.create_task(job.catch_up(), name="report-catch-up"))
        self._install_blocklist_jobs()

    # ------------------------------------------------------------------ blocklists
    def _unchanged_blocklist_runs(self, old: Settings, new: Settings) -> dict[str, Any]:
        """Job id → next run time of the checks a reload leaves as they were: they keep
        their schedule (a reload does not ask the rate-limited lists again at once)."""
        if self.scheduler is None:
            return {}

        def config(settings: Settings, service: str, name: str) -> Any:
            for svc in settings.services:
                if svc.name == service:
                    return next((c for c in svc.blocklists if c.name == name), None)
            return None

        keep = {}
        for job in self.scheduler.get_jobs():
            if job.id.startswith(BLOCKLIST_JOB):
                before, after = config(old, *job.args), config(new, *job.args)
                if before is not None and after is not None and same_configs([before], [after]):
                    keep[job.id] = job.next_run_time
        return keep

    def _install_blocklist_jobs(self, keep: dict[str, Any] | None = None) -> None:
        """The leader's blocklist checks, each every `interval_seconds`, the first now
        (or, for a check a reload kept as it was, when it was due): one check per
        interval for the whole deployment (the lists rate-limit)."""
        if self.scheduler is None or self.blocklists is None:
            return
        self._remove_blocklist_jobs()
        now = dt.datetime.now(dt.UTC)
        for service, name, every in self.blocklists.jobs():
            job_id = f"{BLOCKLIST_JOB}{service}/{name}"
            self.metrics.lead_blocklists(service, self.blocklists.pairs(service, name))
            self.scheduler.add_job(
                self._check_blocklist,
                "interval",
                seconds=every,
                args=[service, name],
                id=job_id,
                next_run_time=(keep or {}).get(job_id) or now,
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )

    @staticmethod
    def _warn_unwatched(spells: list[Any]) -> None:
        for spell in spells:
            log.warning(
                "blocklist: %s (%s) on %s stays listed in the store: no configured check asks"
                " about it any more",
                spell.target,
                spell.service,
                spell.zone,
            )

    def _remove_blocklist_jobs(self) -> None:
        if self.scheduler is None:
            return
        for job in self.scheduler.get_jobs():
            if job.id.startswith(BLOCKLIST_JOB):
                service, name = job.args
                self.scheduler.remove_job(job.id)
                if self.blocklists is not None:
                    self.metrics.unlead_blocklists(service, self.blocklists.pairs(service, name))

    async def _check_blocklist(self, service: str, name: str) -> None:
        """One check (DNS on the loop, asynchronous), its findings to the metrics and the
        policy, the policy's writes (the spells, the incident) to the store writer."""
        runner, policy = self.blocklists, self.policy
        if runner is None or policy is None:
            return
        pairs = runner.pairs(service, name)
        try:
            findings = await runner.check(service, name, self.clock.wall())
        except Exception:  # a bug must not stop the next check
            log.exception("blocklist check %s/%s failed", service, name)
            return
        if findings is None or self.policy is not policy:
            return  # removed by a reload, or this instance stepped down meanwhile
        self.metrics.observe_blocklist(service, pairs, findings.listed, findings.results.items())
        for spell in findings.opened:
            log.warning(
                "blocklist: %s (%s) listed on %s (%s)%s",
                spell.target,
                service,
                spell.zone,
                ",".join(spell.codes),
                f": {spell.txt}" if spell.txt else "",
            )
        for target, zone in findings.closed:
            log.info("blocklist: %s (%s) delisted from %s", target, service, zone)
        try:
            policy.on_blocklist(findings)
        except Exception:  # a policy bug must never stop the checks
            log.exception("incident policy failed on a blocklist check of %s", service)
        if self.writer is not None:
            self.writer.submit_effects(self._effects.take(), self._fenced)

    def _wake_dispatcher(self) -> None:
        """A person's action queued notifications (any thread): the leader sends them."""
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.wake()

    def _on_stale(self) -> None:
        """Writer thread: the store says another instance leads now: ask at once rather
        than at the next renewal."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._recheck_lease)

    def _recheck_lease(self) -> None:
        if self.elector is not None and self.elector.leading and not self._stopping.is_set():
            self._tasks.append(asyncio.create_task(self.elector.attempt(), name="lease-recheck"))

    # ------------------------------------------------------------------ reload
    def reload_soon(self, why: str = "SIGHUP") -> None:
        """Reload in a task of its own (a signal handler cannot wait)."""
        task = asyncio.get_running_loop().create_task(self.reload(why), name=f"reload ({why})")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self, why: str = "request") -> ReloadResult:
        """Read the config file again and apply all of it, or refuse it and keep the config
        in force (monitor/reload.py). Never raises: the answer says which, in one line."""
        async with self._reload_lock:
            if not self._started or self._stopping.is_set():
                return ReloadResult(False, "reload refused: the daemon is not running")
            if self._handover_task is not None:
                # the previous reload's old seconds finish first (at most a timeout or so)
                await asyncio.gather(self._handover_task, return_exceptions=True)
            plans: list[Plan] = []
            notifiers: dict[str, Notifier] = {}
            try:
                new, changes = await asyncio.to_thread(self._read_config)
                plans = await asyncio.to_thread(plan_probes, new, self.clock, None, ThreadShare())
                assert self._session is not None
                notifiers = build_notifiers(new.notifiers, self._session, self.clock)
                policy = self.policy
                prepared = None if policy is None else await asyncio.to_thread(policy.prepare, new)
                fenced = self._fenced
                # a check the reload adds (again) starts from what the store has open
                spells = (
                    []
                    if fenced is None or self.blocklists is None
                    else await asyncio.to_thread(fenced.spells, None, None, None, True)
                )
            except Exception as exc:
                await _close_probes(plans)
                for notifier in notifiers.values():
                    await notifier.close()
                if isinstance(exc, ConfigError | ProbeConfigError):
                    why_not = str(exc)
                else:  # the store refused a read, or a bug: still one line, no traceback
                    why_not = f"{type(exc).__name__}: {exc}"
                return self._refused(why, why_not)
            # the new series (at zero) before the hand-over: creating them costs ~0.2 ms a
            # service, in a thread rather than on the loop
            await asyncio.to_thread(self._declare, new, ThreadShare())
            boundary = self._apply(new, changes, plans, prepared, spells)
            assert self.launcher is not None
            await self.launcher.start()
            if self.dispatcher is not None:
                await self.dispatcher.replace_notifiers(notifiers)
            else:
                for notifier in notifiers.values():  # built to check them; a leader builds its own
                    await notifier.close()
            try:
                if self._fenced is not None:  # the leader keeps the config's windows
                    await asyncio.to_thread(self._sync_config_maintenance)
                await self.reload_maintenance()
            except Exception as exc:  # the rest is applied: the windows follow at the next
                log.warning("config reload: maintenance windows not stored yet: %s", exc)
            self.metrics.reload_ok.set(1)
            self.metrics.reload_time.set(self.clock.wall())
            self.metrics.reloads.labels("applied").inc()
            message = f"config reloaded ({why}) from {self.config_path}: {changes.summary()}"
            log.info("%s; the new config measures from %s", message, iso(boundary))
            return ReloadResult(True, message, changes, boundary)

    def _declare(self, settings: Settings, pause: Callable[[], None] | None = None) -> None:
        def services() -> Iterator[tuple[str, list[str], list[tuple[str, str]]]]:
            for svc in settings.services:
                if pause is not None:
                    pause()
                yield svc.name, svc.channels, [(p.channel, p.name) for p in svc.probes if p.enabled]

        self.metrics.declare(services(), [n.name for n in settings.notifiers])
        if self.policy is not None:
            self.metrics.lead([(svc.name, svc.channels) for svc in settings.services])

    def _read_config(self) -> tuple[Settings, Changes]:
        """Worker thread: the file parsed and checked, with what it changes."""
        path = self.config_path
        if path is None:
            raise ConfigError("no config file to reload: the daemon was started without one")
        new = load(path)
        check_secrets(new, str(path))
        restart = restart_needed(self.settings, new)
        if restart:
            raise ConfigError(f"{path}: {'; '.join(restart)}")
        return new, compare(self.settings, new)

    def _refused(self, why: str, reason: str) -> ReloadResult:
        self.metrics.reload_ok.set(0)
        self.metrics.reloads.labels("refused").inc()
        message = f"config reload ({why}) refused, the config in force is kept: {reason}"
        log.error("%s", message)
        return ReloadResult(False, message)

    def _apply(
        self,
        new: Settings,
        changes: Changes,
        plans: list[Plan],
        prepared: Any,
        spells: list[Any] | None = None,
    ) -> int:
        """On the loop, without a pause: hand measurement over at the first second the
        running launcher has not scheduled; everything else takes the new config now."""
        old, detector = self.launcher, self.detector
        assert old is not None and detector is not None
        boundary = old.retire()
        old_settings = self.settings
        self._generation += 1
        self._handover = Handover(
            boundary,
            self._on_second,
            {s.name for s in old_settings.services if detector.next_for(s.name) < boundary},
        )
        self.detector = Detector(
            new.services,
            self.vantage,
            functools.partial(self._route, self._generation),
            start_second=boundary,
        )
        self.launcher = Launcher(
            new,
            self.clock,
            self.detector,
            on_attempt=self._on_attempt,
            on_skip=self.metrics.observe_skip,
            watchdog=self.watchdog,
            plans=plans,
        )
        self._retiring.append(old)
        self.settings = new
        if self.policy is not None and prepared is not None:
            self.policy.reconfigure(new, prepared)
        if self.blocklists is not None:
            keep = self._unchanged_blocklist_runs(old_settings, new)
            self._remove_blocklist_jobs()
            self._warn_unwatched(self.blocklists.reconfigure(new.services, spells or []))
            self._install_blocklist_jobs(keep)
        if self.incidents is not None:
            self.incidents.reconfigure(new)
        self._set_maintenance(self._maintenance)  # the new services' spans
        for name in changes.added:
            self._measured_from[name] = boundary
        if self.scheduler is not None and self.store is not None and self.dispatcher is not None:
            ReportJob(new, self.store, self.clock).install(self.scheduler)
        if new.monitor.log_level != old_settings.monitor.log_level:
            logging.getLogger().setLevel(new.monitor.log_level)
        self.overload.reset()  # the new launcher counts from zero
        removed = [s for s in old_settings.services if s.name in changes.removed]
        self._handover_task = asyncio.get_running_loop().create_task(
            self._finish_handover(old, removed), name="reload hand-over"
        )
        return boundary

    async def _finish_handover(self, old: Launcher, removed: list[Any]) -> None:
        """Once the old launcher's seconds are all final: close it, and drop what is
        left of the services the reload removed."""
        await old.wait_retired()
        self._handover = None
        await old.stop()
        if old in self._retiring:
            self._retiring.remove(old)
        for svc in removed:
            self.metrics.forget(svc.name, svc.channels)
            self.stored_verdicts.pop(svc.name, None)
            self.last_final.pop(svc.name, None)
            self._month_recent.pop(svc.name, None)
            self.month.pop(svc.name, None)
            for channel in [*svc.channels, SERVICE_CHANNEL]:
                self.last_verdicts.pop((svc.name, channel), None)
        log.info("config reload: the previous config's seconds are all final")

    def _store(self) -> Store:
        assert self.store is not None
        return self.store

    # ------------------------------------------------------------------ hot path
    def _route(
        self, generation: int, second: int, verdicts: list[SecondVerdict], evidence: list[Attempt]
    ) -> None:
        """Every detector's sink: straight to `_on_second`, except during a reload's
        hand-over, when `Handover` keeps each service's seconds in order."""
        handover = self._handover
        if handover is None:
            self._on_second(second, verdicts, evidence)
        elif generation == self._generation:
            handover.from_new(second, verdicts, evidence)
        else:
            handover.from_old(second, verdicts, evidence)

    def _on_attempt(self, a: Attempt) -> None:
        self.metrics.observe_attempt(a)
        self._pending_counts[
            (a.service, a.channel, a.probe, a.second - a.second % 60, a.outcome.value)
        ] += 1

    def _on_second(
        self, second: int, verdicts: list[SecondVerdict], evidence: list[Attempt]
    ) -> None:
        """The detector's sink: every verdict of one final second."""
        if self._maintenance:
            verdicts = [
                dataclasses.replace(v, excluded=True) if self._excluded(v.service, second) else v
                for v in verdicts
            ]
        self.metrics.observe_verdicts(verdicts, self.vantage)
        if self.policy is not None and not self._combining:  # a lone leader: its own again
            self.metrics.observe_verdicts(verdicts, COMBINED)
        for v in verdicts:
            self.last_verdicts[(v.service, v.channel)] = v
            if v.channel == SERVICE_CHANNEL:
                self.last_final[v.service] = second
                if v.verdict is Verdict.UNAVAILABLE and not v.excluded:
                    self._month_recent[v.service].append(second)
        writer = self.writer
        if writer is not None:
            # the second first, then what the policy makes of it: the writer keeps the order
            writer.submit_seconds(verdicts, evidence, self._take_counts())
        else:
            self._stored(verdicts)
        if self.policy is not None and not self._combining:
            try:
                self.policy.on_second(second, verdicts)
            except Exception:  # a policy bug must never stop the measuring
                log.exception("incident policy failed on second %d", second)
        if writer is not None:
            writer.submit_effects(self._effects.take(), self._fenced)
        for listener in self.listeners:
            try:
                listener(second, verdicts)
            except Exception:
                log.exception("verdict listener failed")

    def _take_counts(self) -> list[MinuteCount]:
        counts, self._pending_counts = self._pending_counts, collections.Counter()
        return [
            MinuteCount(svc, ch, probe, minute, outcome, n, self.vantage)
            for (svc, ch, probe, minute, outcome), n in counts.items()
        ]

    def _excluded(self, service: str, second: int) -> bool:
        spans = self._excluded_spans.get(service)
        return spans is not None and contains(spans, second)

    # ------------------------------------------------------------------ the store's side
    def _new_writer(self, store: Store) -> StoreWriter:
        m = self.metrics
        return StoreWriter(
            store,
            on_applied=self._on_applied,
            on_stuck=self._on_stuck,
            on_error=lambda operation, _exc: m.store_errors.labels(operation).inc(),
            on_drop=lambda kind, n: m.store_dropped.labels(kind).inc(n),
            on_stale=self._on_stale,
            on_effects=self._complete_cases,
        )

    def _complete_cases(self, job: EffectsJob) -> None:
        """Writer thread, before the effects that open a Critical Issue are written: its
        Sev-1 case sheet (alerting/case.py) from the evidence already stored, on its
        timeline before its pages, and in its trigger pages. A store that refuses the
        read refuses the job: the writer retries it, this with it. The effects and items
        are replaced, never changed in place (the writer's `on_effects`)."""
        store = job.store if job.store is not None else self.store
        assert store is not None
        effects = list(job.effects)
        changed = False
        for inc in [e.incident for e in job.effects if isinstance(e, CreateIncident)]:
            if inc.severity != Severity.CRITICAL:
                continue
            rows = read_evidence(store, inc)  # raises when the store refuses
            try:
                case = compose_case(self.settings, inc, rows, self.clock.wall())
                text = render_case(case)
            except Exception:  # a bug here must not hold the writer: no sheet, one log
                log.exception("Critical Issue %d: the case sheet could not be written", inc.id)
                continue
            for n, e in enumerate(effects):
                if isinstance(e, Enqueue) and any(
                    i.incident_id == inc.id and i.event == "trigger" for i in e.items
                ):
                    effects[n] = Enqueue(
                        tuple(
                            dataclasses.replace(i, payload={**i.payload, "case": text})
                            if i.incident_id == inc.id and i.event == "trigger"
                            else i
                            for i in e.items
                        )
                    )
            opened = next(
                n for n, e in enumerate(effects)
                if isinstance(e, CreateIncident) and e.incident.id == inc.id
            )  # fmt: skip
            at = next(
                (n for n in range(opened + 1, len(effects)) if isinstance(effects[n], Enqueue)),
                len(effects),
            )
            event = IncidentEvent(inc.id, self.clock.wall(), CASE_EVENT, {"case": case})
            effects.insert(at, AddEvent(event))
            changed = True
        if changed:
            job.effects = effects

    def _count_incidents(self) -> collections.Counter[tuple[str, str]]:
        assert self.store is not None
        names = {s.name for s in self.settings.services}
        return collections.Counter(
            (i.service, str(i.severity))
            for i in self.store.list_incidents(limit=10**9)
            if i.service in names
        )

    def _on_applied(self, job: Job) -> None:
        """Writer thread: a job is stored; the API may show its verdicts; count the
        incidents opened, tie pages sent from memory to their rows and let the dispatcher
        see the new items."""
        if isinstance(job, SecondsJob):
            self._stored(job.verdicts)
        if isinstance(job, EffectsJob):
            for effect in job.effects:
                if not isinstance(effect, CreateIncident | UpdateIncident) or self.policy is None:
                    continue
                inc = effect.incident
                if isinstance(effect, CreateIncident):
                    self.metrics.incidents_total.labels(
                        inc.service, str(inc.severity), COMBINED
                    ).inc()
                self._track_open(inc)
        dispatcher = self.dispatcher
        if dispatcher is None or not isinstance(job, EffectsJob) or not job.stored:
            return
        dispatcher.reconcile(job.stored)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(dispatcher.wake)

    def _stored(self, verdicts: list[SecondVerdict]) -> None:
        # one small dict per service, swapped in whole: an answer never mixes two seconds
        # of a service, and nothing grows with the number of services per job
        fresh: dict[str, dict[str, SecondVerdict]] = {}
        for v in verdicts:  # in order: the last one of each channel wins
            fresh.setdefault(v.service, {})[v.channel] = v
        for service, channels in fresh.items():
            self.stored_verdicts[service] = {**self.stored_verdicts.get(service, {}), **channels}
        self.live.stored(verdicts)

    def _on_stuck(self, items: list[OutboxItem]) -> None:
        """Writer thread: the store has refused these pages' items for a while."""
        critical = [i for i in items if i.payload.get("tier") in PAGE_TIERS]
        if critical and self.dispatcher is not None:
            self.dispatcher.page_from_memory(critical)

    def _flush(self, timeout: float = 30.0) -> bool:
        """Write what the writer holds now (blocking: tests, and the stop). True if all."""
        if self.writer is None:
            return True
        if self.writer.running:
            return self.writer.flush(timeout)
        return self.writer.drain(timeout)

    async def _poll_loop(self) -> None:
        """Once a second, off the loop: what the store says of the incidents the policy
        tracks (a person may have acknowledged or resolved one, here or in another
        process), handed to the policy on the loop."""
        while True:
            await asyncio.sleep(POLL_INCIDENTS_EVERY)
            stats = [s for x in self._launchers() for s in x.stats.values()]
            if stats:
                self.overload.sample(
                    sum(s["launched"] for s in stats), sum(s["skipped"] for s in stats)
                )
            if self.writer is not None:
                self.writer.report_stuck()  # pages the store has held back too long
                for kind, n in self.writer.pending().items():
                    self.metrics.store_pending.labels(kind).set(n)
            policy, store = self.policy, self.store
            if policy is None or store is None:
                continue
            ids = policy.tracked()
            if not ids:
                continue
            try:
                fresh = await asyncio.to_thread(_read_incidents, store, ids)
            except Exception as exc:
                log.debug("reading incidents for the policy failed: %r", exc)
                continue
            try:
                policy.absorb(fresh)
            except Exception:
                log.exception("incident policy failed on a person's action")
            if self.writer is not None:
                self.writer.submit_effects(self._effects.take(), self._fenced)

    def _fill_restart_gap(self, start_second: int) -> None:
        """Seconds between the last stored one and this start were not measured."""
        store = self.store
        assert store is not None
        for svc in self.settings.services:
            for channel in [*svc.channels, SERVICE_CHANNEL]:
                last = store.last_second(svc.name, channel, self.vantage)
                if last is not None and last + 1 <= start_second - 1:
                    store.fill_unknown(
                        svc.name,
                        channel,
                        self.vantage,
                        last + 1,
                        start_second - 1,
                        UnknownReason.MONITOR_DOWN,
                    )

    def _sync_config_maintenance(self) -> None:
        """The leader's (through its fence): config windows replace earlier config
        windows; API/CLI windows are kept."""
        store = self._fenced or self.store
        assert store is not None
        for w in store.list_maintenance():
            if w.source == "config":
                store.remove_maintenance(w.id)
        for m in self.settings.maintenance:
            store.add_maintenance(
                m.service, int(m.start.timestamp()), int(m.end.timestamp()), m.reason, "config"
            )

    # ------------------------------------------------------------------ periodic
    async def reload_maintenance(self) -> None:
        """Re-read maintenance windows (the CLI may change them from another process)."""
        assert self.store is not None
        self._set_maintenance(await asyncio.to_thread(self.store.list_maintenance))

    def _set_maintenance(self, windows: list[MaintenanceWindow]) -> None:
        self._maintenance = windows
        self._excluded_spans = {
            svc.name: excluded_spans(windows, svc.name) for svc in self.settings.services
        }

    async def _housekeeping(self) -> None:
        await self.reload_maintenance()
        await asyncio.to_thread(self._refresh_month)
        await asyncio.to_thread(self._refresh_incident_gauge)

    def _refresh_month(self) -> None:
        """The month's unavailable seconds and budget per service, from the store (the
        truth): a lone instance's own verdicts plus its seconds not yet flushed; on a
        shared store every vantage's, combined by the quorum. Every instance keeps them
        for its API (`month`); the leader exports them (from `metrics.lead` on, which a
        takeover calls before it publishes its policy)."""
        store = self.store
        assert store is not None
        now = self.clock.wall()
        tz = self.settings.report.timezone
        flushed = max(self._start_floor, (self.writer and self.writer.durable_through) or 0)
        leading = self.metrics.leading
        for svc in self.settings.services:
            start, end = month_of(now, ZoneInfo(tz))
            windows = excluded_spans(self._maintenance, svc.name)
            excluded_month = overlap(windows, start, end)
            budget = round((1 - svc.slo_target_percent / 100) * ((end - start) - excluded_month), 3)
            if self._combining:
                unavailable = verdict_counts(
                    store,
                    svc.name,
                    SERVICE_CHANNEL,
                    start,
                    end,
                    quorum=svc.quorum,
                    maintenance=True,
                )["unavailable"]
            else:
                unavailable = 0
                for run in store.runs(
                    svc.name, SERVICE_CHANNEL, start, min(end, flushed + 1), self.vantage
                ):
                    if run.verdict is Verdict.UNAVAILABLE:
                        unavailable += run.seconds - overlap(windows, run.first, run.last + 1)
                recent = self._month_recent[svc.name]
                while recent and recent[0] <= flushed:
                    recent.popleft()
                unavailable += sum(1 for t in recent if start <= t < end)
            self.month[svc.name] = (unavailable, budget)
            if leading:
                self.metrics.month_budget.labels(svc.name, COMBINED).set(budget)
                self.metrics.month_unavailable.labels(svc.name, COMBINED).set(unavailable)

    def _refresh_incident_gauge(self) -> None:
        """The open-incident gauges from the store (the leader exports them); between
        these, the policy's own writes move them (`_track_open`)."""
        store = self.store
        assert store is not None
        if not self.metrics.leading:
            return
        self._open_incidents = {
            inc.id: (inc.service, str(inc.severity))
            for inc in store.list_incidents(limit=10_000)
            if inc.state != IncidentState.RESOLVED
        }
        for svc in self.settings.services:
            self._set_open_gauge(svc.name)

    def _track_open(self, inc: Incident) -> None:
        """Writer thread: an incident the policy wrote is stored; its service's gauge."""
        if inc.state == IncidentState.RESOLVED:
            self._open_incidents.pop(inc.id, None)
        else:
            self._open_incidents[inc.id] = (inc.service, str(inc.severity))
        self._set_open_gauge(inc.service)

    def _set_open_gauge(self, service: str) -> None:
        counts = collections.Counter(self._open_incidents.values())
        for severity in Severity:
            self.metrics.incidents_open.labels(service, severity, COMBINED).set(
                counts[(service, str(severity))]
            )

    async def _prune(self) -> None:
        store = self.store
        assert store is not None
        days = self.settings.store.evidence_retention_days
        before = int(self.clock.wall()) - days * 86400
        removed = await asyncio.to_thread(store.prune, before)
        sent = await asyncio.to_thread(store.prune_outbox, before)
        log.info(
            "retention: removed %d evidence and count rows, %d delivered notifications of"
            " incidents resolved, older than %d days",
            removed,
            sent,
            days,
        )

    # ------------------------------------------------------------------ views for the API
    def stored_through(self, service: str) -> int | None:
        """The last second of `service` whose verdicts are in the store (this run)."""
        return self.writer.durable.get(service) if self.writer is not None else None

    def ready(self) -> tuple[bool, str]:
        """Ready while every service's last final second is recent enough and the store
        takes writes (a refusal shorter than STORE_UNREADY_AFTER is a hiccup)."""
        if self.overload.reason is not None:
            return False, self.overload.reason
        trouble = self.writer.trouble() if self.writer is not None else None
        if trouble is not None and self.writer is not None:
            since = self.writer.monotonic() - trouble[1]
            if since >= STORE_UNREADY_AFTER:
                return False, f"store: {trouble[0]} for {since:.0f} s"
        now = self.clock.wall()
        for svc in self.settings.services:
            allowed = svc.max_timeout + 2
            last = self.last_final.get(svc.name)
            added = self._measured_from.get(svc.name)
            if last is None and added is not None:
                if now - added > allowed + 1:  # a reload added it: no blip meanwhile
                    return False, f"{svc.name}: no final second yet"
                continue
            if last is None:
                if now - self.started_at > allowed + 1:
                    return False, f"{svc.name}: no final second yet"
                return False, f"{svc.name}: starting"
            if now - (last + 1) > allowed:
                return False, f"{svc.name}: last final second is {now - (last + 1):.1f}s old"
        return True, "ok"
