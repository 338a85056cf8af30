"""Prometheus metrics of availmon, on an explicit `CollectorRegistry` (no global state).

Names and labels are a stable interface (ARCHITECTURE.md "Metrics"); dashboards and rules in
`grafana/` query exactly these. `month_error_budget_seconds` is the month's whole
allowance, (1 − target) × (month seconds − excluded seconds); budget left is
`month_error_budget_seconds - month_unavailable_seconds`.

Every per-service series carries `vantage`. Each instance exports its own vantage's
attempts and verdicts under its name (`monitor.vantage`); the leader alone exports the
verdicts it judges incidents on, combined out of every vantage by the quorum, and the
month and incident gauges, all under ``vantage="combined"`` (`monitor.verdicts.COMBINED`;
on a lone instance those are its own verdicts again). An instance that stops leading
drops its combined series, so at any time one instance exports them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from alerting.model import Severity
from monitor.verdicts import COMBINED, SERVICE_CHANNEL, SecondVerdict, Verdict
from probes.base import Attempt, Outcome

VERDICT_LABELS = ("available", "unavailable", "unknown", "excluded")
# Attempt latency buckets: a healthy API answers in tens of ms, an SMTP injection in
# hundreds; the tail up to the longest timeout must stay visible.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, vantage: str = "") -> None:
        """`vantage`: this instance's (`monitor.vantage`), the label of its own series."""
        self.vantage = vantage
        #: the combined series are exported (`lead`, until `unlead`)
        self.leading = False
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "availmon_attempts_total",
            "Probe attempts by outcome.",
            ["service", "channel", "probe", "outcome", "vantage"],
            registry=r,
        )
        self.duration = Histogram(
            "availmon_attempt_duration_seconds",
            "Attempt latency, launch to end.",
            ["service", "channel", "probe", "vantage"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.seconds = Counter(
            "availmon_seconds_total",
            "Final seconds by verdict; excluded counts maintenance seconds instead.",
            ["service", "channel", "verdict", "vantage"],
            registry=r,
        )
        self.available = Gauge(
            "availmon_available",
            "1 if the last final second was not unavailable.",
            ["service", "channel", "vantage"],
            registry=r,
        )
        self.verdict = Gauge(
            "availmon_verdict",
            "State set of the last final second's verdict.",
            ["service", "channel", "verdict", "vantage"],
            registry=r,
        )
        self.month_unavailable = Gauge(
            "availmon_month_unavailable_seconds",
            "Unavailable non-excluded seconds this calendar month (report time zone); "
            "the leader's, combined.",
            ["service", "vantage"],
            registry=r,
        )
        self.month_budget = Gauge(
            "availmon_month_error_budget_seconds",
            "The month's error budget: (1 - SLO target) x (month seconds - excluded seconds); "
            "the leader's.",
            ["service", "vantage"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "availmon_loop_lag_seconds",
            "Event-loop lag of the monitor itself.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.last_final = Gauge(
            "availmon_last_final_second_timestamp_seconds",
            "Epoch second of the service's last final second.",
            ["service", "vantage"],
            registry=r,
        )
        self.incidents_open = Gauge(
            "availmon_incidents_open",
            "Incidents not yet resolved; the leader's.",
            ["service", "severity", "vantage"],
            registry=r,
        )
        self.incidents_total = Counter(
            "availmon_incidents_total",
            "Incidents opened, by severity; counted from the store at start, so a restart "
            "does not forget the ones before it; the leader's.",
            ["service", "severity", "vantage"],
            registry=r,
        )
        self.notifications = Counter(
            "availmon_notifications_total",
            "Notification deliveries by outcome.",
            ["notifier", "outcome"],
            registry=r,
        )
        self.skipped = Counter(
            "availmon_launches_skipped_total",
            "Launches skipped (late beyond max_launch_lag or over the in-flight bound).",
            ["service", "channel", "probe", "vantage"],
            registry=r,
        )
        self.store_errors = Counter(
            "availmon_store_errors_total",
            "Store writes that failed and are kept to be retried, by operation.",
            ["operation"],
            registry=r,
        )
        self.store_pending = Gauge(
            "availmon_store_pending",
            "Writes waiting for the store, by kind (verdicts, evidence, counts, effects).",
            ["kind"],
            registry=r,
        )
        self.leader = Gauge(
            "availmon_leader",
            "1 while this instance leads (runs the policies, the outbox and the reports).",
            ["vantage"],
            registry=r,
        )
        self.leader_changes = Counter(
            "availmon_leader_changes_total",
            "Times this instance took or lost the leadership.",
            registry=r,
        )
        self.combine_lag = Histogram(
            "availmon_combine_lag_seconds",
            "The leader's combined verdicts: from a second's end to its combination.",
            buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30),
            registry=r,
        )
        self.combine_late = Counter(
            "availmon_combine_late_total",
            "Seconds the leader combined without this vantage's verdict (it came too late).",
            ["vantage"],
            registry=r,
        )
        self.reload_ok = Gauge(
            "availmon_config_last_reload_successful",
            "1 if the last config reload (SIGHUP, POST /-/reload) was applied, 0 if it was "
            "refused and the config before it is still in force.",
            registry=r,
        )
        self.reload_ok.set(1)
        self.reload_time = Gauge(
            "availmon_config_last_reload_success_timestamp_seconds",
            "When the config in force was loaded (the start, or the last applied reload).",
            registry=r,
        )
        self.reloads = Counter(
            "availmon_config_reloads_total",
            "Config reloads by result (applied, refused).",
            ["result"],
            registry=r,
        )
        for result in ("applied", "refused"):
            self.reloads.labels(result)
        self.store_dropped = Counter(
            "availmon_store_dropped_total",
            "Attempt evidence dropped past the writer's bound while the store refused.",
            ["kind"],
            registry=r,
        )

        self.blocklist_listed = Gauge(
            "availmon_blocklist_listed",
            "1 while the target (a sending IP or domain) is listed on the blocklist zone, "
            "0 otherwise; the leader's.",
            ["service", "target", "zone", "vantage"],
            registry=r,
        )
        self.blocklist_checks = Counter(
            "availmon_blocklist_checks_total",
            "Blocklist queries by result (listed, clean, error); the leader's.",
            ["service", "zone", "result", "vantage"],
            registry=r,
        )

    BLOCKLIST_RESULTS = ("listed", "clean", "error")

    def lead_blocklists(self, service: str, pairs: Iterable[tuple[str, str]]) -> None:
        """The leader's blocklist series of one check at zero (`pairs`: (target, zone))."""
        for target, zone in pairs:
            self.blocklist_listed.labels(service, target, zone, COMBINED)
            for result in self.BLOCKLIST_RESULTS:
                self.blocklist_checks.labels(service, zone, result, COMBINED)

    def unlead_blocklists(self, service: str, pairs: Iterable[tuple[str, str]]) -> None:
        for target, zone in pairs:
            with contextlib.suppress(KeyError):
                self.blocklist_listed.remove(service, target, zone, COMBINED)
            for result in self.BLOCKLIST_RESULTS:
                with contextlib.suppress(KeyError):
                    self.blocklist_checks.remove(service, zone, result, COMBINED)

    def observe_blocklist(
        self,
        service: str,
        pairs: Iterable[tuple[str, str]],
        listed: Iterable[tuple[str, str]],
        results: Iterable[tuple[tuple[str, str], int]],
    ) -> None:
        now = set(listed)
        for target, zone in pairs:
            self.blocklist_listed.labels(service, target, zone, COMBINED).set(
                1 if (target, zone) in now else 0
            )
        for (zone, result), n in results:
            self.blocklist_checks.labels(service, zone, result, COMBINED).inc(n)

    # the store writer (monitor/writer.py)
    STORE_OPERATIONS = ("seconds", "effects")
    STORE_KINDS = ("verdicts", "evidence", "counts", "effects")

    def declare(
        self,
        services: Iterable[tuple[str, Sequence[str], Sequence[tuple[str, str]]]],
        notifiers: Iterable[str] = (),
    ) -> None:
        """Create this vantage's series at zero so rates and absent() work from the first
        scrape (the leader's combined ones: `lead`).

        `services` yields (service, channels, [(channel, probe), ...])."""
        me = self.vantage
        for service, channels, probes in services:
            for channel, probe in probes:
                for outcome in Outcome:
                    self.attempts.labels(service, channel, probe, outcome.value, me)
                self.duration.labels(service, channel, probe, me)
                self.skipped.labels(service, channel, probe, me)
            self._declare_verdicts(service, channels, me)
        for name in notifiers:
            for result in ("sent", "retry", "failed"):
                self.notifications.labels(name, result)
        for operation in self.STORE_OPERATIONS:
            self.store_errors.labels(operation)
        for kind in self.STORE_KINDS:
            self.store_pending.labels(kind)
        self.store_dropped.labels("evidence")

    def _declare_verdicts(self, service: str, channels: Sequence[str], vantage: str) -> None:
        for channel in [*channels, SERVICE_CHANNEL]:
            for v in VERDICT_LABELS:
                self.seconds.labels(service, channel, v, vantage)
                self.verdict.labels(service, channel, v, vantage)

    def lead(self, services: Iterable[tuple[str, Sequence[str]]]) -> None:
        """This instance leads: its combined series, at zero (a counter that the previous
        leader exported starts again here, as after a restart)."""
        self.leading = True
        for service, channels in services:
            self._declare_verdicts(service, channels, COMBINED)
            for severity in Severity:
                self.incidents_open.labels(service, severity, COMBINED)
                self.incidents_total.labels(service, severity, COMBINED)
            self.month_unavailable.labels(service, COMBINED)

    def unlead(self, services: Iterable[tuple[str, Sequence[str]]]) -> None:
        """This instance no longer leads: drop its combined series (the new leader's are
        the ones to read; frozen ones here would be counted twice)."""
        self.leading = False
        for service, channels in services:
            self._remove(service, channels, COMBINED)

    def forget(self, service: str, channels: Sequence[str]) -> None:
        """Drop the gauges of a service a reload removed: a last verdict or an open-incident
        count that nothing updates any more would mislead a dashboard. (Counters stay:
        their history is true.)"""
        for vantage in (self.vantage, COMBINED):
            self._remove(service, channels, vantage, counters=False)

    def _remove(
        self, service: str, channels: Sequence[str], vantage: str, counters: bool = True
    ) -> None:
        series: list[tuple[Any, tuple[str, ...]]] = []
        for channel in [*channels, SERVICE_CHANNEL]:
            series.append((self.available, (service, channel, vantage)))
            for v in VERDICT_LABELS:
                series.append((self.verdict, (service, channel, v, vantage)))
                if counters:
                    series.append((self.seconds, (service, channel, v, vantage)))
        for severity in Severity:
            series.append((self.incidents_open, (service, severity, vantage)))
            if counters:
                series.append((self.incidents_total, (service, severity, vantage)))
        for gauge in (self.month_unavailable, self.month_budget, self.last_final):
            series.append((gauge, (service, vantage)))
        for metric, values in series:
            with contextlib.suppress(KeyError):
                metric.remove(*values)

    def observe_attempt(self, a: Attempt) -> None:
        self.attempts.labels(a.service, a.channel, a.probe, a.outcome.value, self.vantage).inc()
        if a.outcome is not Outcome.PROBE_ERROR:
            self.duration.labels(a.service, a.channel, a.probe, self.vantage).observe(a.latency)

    def observe_skip(self, service: str, channel: str, probe: str, second: int) -> None:
        self.skipped.labels(service, channel, probe, self.vantage).inc()

    def value(self, name: str, **labels: str) -> float | None:
        """The current value of one sample (e.g. a gauge), through the public registry API."""
        return self.registry.get_sample_value(name, labels)

    def observe_verdicts(self, verdicts: Sequence[SecondVerdict], vantage: str) -> None:
        """Final seconds of this vantage (`vantage` its name) or the leader's combined ones
        (`COMBINED`), which alone count into the month."""
        combined = vantage == COMBINED
        for v in verdicts:
            label = "excluded" if v.excluded else v.verdict.value
            self.seconds.labels(v.service, v.channel, label, vantage).inc()
            self.available.labels(v.service, v.channel, vantage).set(0 if v.unavailable else 1)
            for name in (x.value for x in Verdict):
                self.verdict.labels(v.service, v.channel, name, vantage).set(
                    1 if name == v.verdict.value else 0
                )
            if v.channel == SERVICE_CHANNEL:
                self.last_final.labels(v.service, vantage).set(v.second)
                if combined and v.unavailable and not v.excluded:
                    self.month_unavailable.labels(v.service, COMBINED).inc()
