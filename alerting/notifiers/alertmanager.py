"""Prometheus Alertmanager API v2: an incident is one alert, kept alive until it is resolved.

Every event but resolve posts the incident's alert to ``{url}/api/v2/alerts`` with
``endsAt`` = now + 4 × ``resend_every_seconds``; resolve posts the same labels with
``endsAt`` = now. Alertmanager forgets an alert whose endsAt passes, so while an incident
is unresolved a background task re-posts every active alert each ``resend_every_seconds``
(no outbox row per resend). After a restart the dispatcher hands the notifier the items it
had already sent (`restore`), so re-sending resumes without waiting for the next event.

Labels identify the alert and so never change during an incident: ``alertname``
(AvailmonCriticalIssue | AvailmonNonCriticalIssue), ``service``, ``severity``
(critical | non_critical), ``incident_id``, plus the config's ``labels`` (which cannot
override those four). The vantage is an
annotation, not a label: after a leader fail-over another vantage point sends the
resolve, and a changed label would leave the first alert firing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import Field

from alerting.model import OutboxItem, Severity
from alerting.notifiers.base import HttpNotifier, NotifierBase, Payload, TransportError, rfc3339
from monitor.clock import Clock
from monitor.schema import HttpUrl

log = logging.getLogger("availmon.alerting.alertmanager")


class AlertmanagerConfig(NotifierBase):
    type: Literal["alertmanager"] = "alertmanager"
    url: HttpUrl  # e.g. http://127.0.0.1:9093
    resend_every_seconds: float = Field(default=60, ge=5, le=600)
    labels: dict[str, str] = Field(default_factory=dict)


_ALERTNAMES: dict[str, str] = {
    Severity.CRITICAL: "AvailmonCriticalIssue",
    Severity.NON_CRITICAL: "AvailmonNonCriticalIssue",
}


class AlertmanagerNotifier(HttpNotifier):
    type = "alertmanager"
    config_model = AlertmanagerConfig
    config: AlertmanagerConfig
    handlers: ClassVar[dict[str, str]] = {
        "trigger": "fire",
        "update": "fire",
        "acknowledge": "fire",
        "recover": "fire",
        "resolve": "resolve",
    }

    def __init__(
        self, config: AlertmanagerConfig, session: aiohttp.ClientSession, clock: Clock
    ) -> None:
        super().__init__(config, session, clock)
        #: dedup key → the alert last posted (without endsAt) for every unresolved incident
        self.active: dict[str, dict[str, Any]] = {}
        self._resender: asyncio.Task[None] | None = None

    @property
    def _endpoint(self) -> str:
        return f"{self.config.url.rstrip('/')}/api/v2/alerts"

    def alert(self, payload: Payload) -> dict[str, Any]:
        inc = payload.incident
        labels = {
            # the config's labels first: they may add routing labels, never change identity
            **self.config.labels,
            "alertname": _ALERTNAMES.get(payload.severity, "AvailmonIssue"),
            "service": payload.service,
            "severity": payload.severity,
            "incident_id": str(inc.get("id", "")),
        }
        annotations = {
            "summary": payload.summary,
            "description": payload.text,
            "state": str(inc.get("state", "")),
            "dedup_key": payload.dedup_key,
            "vantage": payload.vantage,
        }
        if inc.get("acknowledged_by"):
            annotations["acknowledged_by"] = str(inc["acknowledged_by"])
        opened = inc.get("opened_at")
        return {
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(float(opened) if opened is not None else payload.at),
        }

    def _firing(self, alert: dict[str, Any]) -> dict[str, Any]:
        ends = self.clock.wall() + 4 * self.config.resend_every_seconds
        return {**alert, "endsAt": rfc3339(ends)}

    async def fire(self, item: OutboxItem, payload: Payload) -> None:
        alert = self.alert(payload)
        await self.post(self._endpoint, [self._firing(alert)])
        self.active[payload.dedup_key] = alert
        self._start_resender(initial_delay=self.config.resend_every_seconds)

    async def resolve(self, item: OutboxItem, payload: Payload) -> None:
        alert = {**self.alert(payload), "endsAt": rfc3339(self.clock.wall())}
        await self.post(self._endpoint, [alert])
        self.active.pop(payload.dedup_key, None)

    def restore(self, sent: Sequence[OutboxItem]) -> None:
        """Rebuild the active set from items delivered before a restart (in id order)."""
        for item in sent:
            if item.notifier != self.name or item.event not in self.handlers:
                continue
            try:
                payload = Payload.of(item)
            except TransportError:
                continue
            if item.event == "resolve":
                self.active.pop(payload.dedup_key, None)
            else:
                self.active[payload.dedup_key] = self.alert(payload)
        if self.active:
            # the alerts may be close to their endsAt: re-post them now
            self._start_resender(initial_delay=0.0)

    async def resend_active(self) -> int:
        """Re-post every active alert with a fresh endsAt; return how many were sent."""
        alerts = [self._firing(a) for a in self.active.values()]
        if alerts:
            await self.post(self._endpoint, alerts)
        return len(alerts)

    def _start_resender(self, initial_delay: float) -> None:
        if self._resender is None or self._resender.done():
            self._resender = asyncio.get_running_loop().create_task(
                self._resend_loop(initial_delay), name=f"alertmanager-resend-{self.name}"
            )

    async def _resend_loop(self, delay: float) -> None:
        while self.active:
            await asyncio.sleep(delay)
            delay = self.config.resend_every_seconds
            try:
                await self.resend_active()
            except TransportError as exc:
                # the next round tries again; endsAt leaves 4 rounds before alerts lapse
                log.warning("alertmanager %s: re-send failed: %s", self.name, exc.message)

    async def close(self) -> None:
        task, self._resender = self._resender, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
