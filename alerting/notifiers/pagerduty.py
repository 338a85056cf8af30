"""PagerDuty Events API v2: pages through an integration's routing key, one alert per incident.

Event mapping (dedup_key = the incident's ``availmon/{service}/{id}``, shortened past 255):

=============  ============================================================================
trigger        ``event_action: trigger`` with payload summary/source/severity/timestamp/
               component/group/class/custom_details
update         the same trigger again: PagerDuty appends it to the open alert's log, no new page
acknowledge    ``event_action: acknowledge`` (routing_key, event_action, dedup_key only)
resolve        ``event_action: resolve``
recover        nothing is sent. Recovery is not resolution (the SLA wants both sides to
               agree), and a re-trigger after someone resolved the alert in PagerDuty would
               open a *new* incident and page again for good news. The next update carries
               the recovered state.
=============  ============================================================================

PagerDuty answers 202; 429 (about 120 events a minute per key) and 5xx are retried.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import SecretStr, field_validator

from alerting.model import OutboxItem
from alerting.notifiers.base import HttpNotifier, NotifierBase, Payload, clip, fit_key, rfc3339
from monitor.schema import ConfigError, HttpUrl, secret


#: incident fields copied into custom_details (None values left out)
class PagerDutyConfig(NotifierBase):
    type: Literal["pagerduty"] = "pagerduty"
    routing_key: SecretStr
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    severity: Literal["critical", "error", "warning", "info"] = "critical"
    _sec = field_validator("routing_key", mode="before")(classmethod(lambda cls, v: secret(v)))


_DETAILS = (
    "id", "service", "severity", "state", "kind", "opened_at", "acknowledged_at",
    "acknowledged_by", "recovered_at", "resolved_at", "resolved_by", "first_unavailable",
    "last_unavailable", "unavailable_seconds", "ack_due_at", "ack_breached_at",
    "response_due_at",
)  # fmt: skip


class PagerDutyNotifier(HttpNotifier):
    type = "pagerduty"
    config_model = PagerDutyConfig
    config: PagerDutyConfig
    handlers: ClassVar[dict[str, str]] = {
        "trigger": "trigger",
        "update": "trigger",
        "acknowledge": "follow_up",
        "resolve": "follow_up",
        "recover": "skip",
    }

    def validate(self) -> None:
        key = self.config.routing_key.get_secret_value()
        if len(key) != 32 or not key.isalnum():
            raise ConfigError(
                f"notifiers.{self.name}.routing_key: must be the 32-character integration key"
            )

    def secrets(self) -> list[str]:
        return [self.config.routing_key.get_secret_value()]

    def _base(self, action: str, payload: Payload) -> dict[str, Any]:
        return {
            "routing_key": self.config.routing_key.get_secret_value(),
            "event_action": action,
            "dedup_key": fit_key(payload.dedup_key, 255),
        }

    async def trigger(self, item: OutboxItem, payload: Payload) -> None:
        details: dict[str, Any] = {
            k: payload.incident[k] for k in _DETAILS if payload.incident.get(k) is not None
        }
        details.update(event=payload.event, seq=payload.seq, tier=payload.tier, text=payload.text)
        body = self._base("trigger", payload)
        body["payload"] = {
            "summary": clip(payload.summary, 1024),
            "source": payload.vantage,
            "severity": self.config.severity,
            "timestamp": rfc3339(payload.at),
            "component": payload.service,
            "group": "availmon",
            "class": str(payload.incident.get("kind") or "unavailable"),
            "custom_details": details,
        }
        await self.post(self.config.url, body, ok=(200, 201, 202))

    async def follow_up(self, item: OutboxItem, payload: Payload) -> None:
        # availmon's acknowledge and resolve are PagerDuty's event actions of the same name
        await self.post(self.config.url, self._base(item.event, payload), ok=(200, 201, 202))
