"""Opsgenie Alert API v2: one alert per incident, identified by its alias (the dedup key).

=============  ============================================================================
trigger        ``POST {url}/v2/alerts`` {message ≤130, alias, description, priority,
               details, source, entity, tags, responders}
update         ``POST {url}/v2/alerts/{alias}/notes?identifierType=alias`` {note}
recover        a note, as update
acknowledge    ``POST {url}/v2/alerts/{alias}/acknowledge?identifierType=alias``
resolve        ``POST {url}/v2/alerts/{alias}/close?identifierType=alias``
=============  ============================================================================

Auth is ``Authorization: GenieKey <api_key>``; the EU instance is ``url =
"https://api.eu.opsgenie.com"``. Opsgenie queues requests and answers 202 with a requestId.
The alias holds slashes, so it is percent-encoded into the path.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator
from yarl import URL

from alerting.model import OutboxItem
from alerting.notifiers.base import HttpNotifier, NotifierBase, Payload, clip, fit_key
from monitor.schema import ConfigError, HttpUrl, secret


class OpsgenieConfig(NotifierBase):
    type: Literal["opsgenie"] = "opsgenie"
    api_key: SecretStr
    url: HttpUrl = "https://api.opsgenie.com"
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P1"
    responders: list[dict[str, str]] = Field(default_factory=list)
    _sec = field_validator("api_key", mode="before")(classmethod(lambda cls, v: secret(v)))


_RESPONDER_TYPES = ("team", "user", "escalation", "schedule")
_ACTIONS = {"acknowledge": "acknowledge", "resolve": "close"}


class OpsgenieNotifier(HttpNotifier):
    type = "opsgenie"
    config_model = OpsgenieConfig
    config: OpsgenieConfig
    handlers: ClassVar[dict[str, str]] = {
        "trigger": "create",
        "update": "note",
        "recover": "note",
        "acknowledge": "action",
        "resolve": "action",
    }

    def validate(self) -> None:
        if not self.config.api_key.get_secret_value():
            raise ConfigError(f"notifiers.{self.name}.api_key: is empty")
        for i, r in enumerate(self.config.responders):
            if r.get("type") not in _RESPONDER_TYPES or not ({"id", "name", "username"} & set(r)):
                raise ConfigError(
                    f"notifiers.{self.name}.responders[{i}]: needs type "
                    f"({'|'.join(_RESPONDER_TYPES)}) and one of id, name, username"
                )

    def secrets(self) -> list[str]:
        return [self.config.api_key.get_secret_value()]

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"GenieKey {self.config.api_key.get_secret_value()}"}

    def _alias_url(self, payload: Payload, action: str) -> URL:
        alias = quote(fit_key(payload.dedup_key, 512), safe="")
        base = self.config.url.rstrip("/")
        # encoded=True keeps %2F as is: a decoded slash would split the alias into segments
        return URL(f"{base}/v2/alerts/{alias}/{action}?identifierType=alias", encoded=True)

    async def create(self, item: OutboxItem, payload: Payload) -> None:
        inc = payload.incident
        details = {
            k: str(v)
            for k, v in inc.items()
            if v is not None and k not in ("summary", "dedup_key") and not isinstance(v, dict)
        }
        body: dict[str, Any] = {
            "message": clip(payload.summary, 130),
            "alias": fit_key(payload.dedup_key, 512),
            "description": clip(payload.text, 15000),
            "priority": self.config.priority,
            "details": details,
            "source": clip(payload.vantage, 100),
            "entity": clip(payload.service, 512),
            "tags": ["availmon", clip(payload.service, 50), payload.severity, payload.tier],
        }
        if self.config.responders:
            body["responders"] = self.config.responders
        await self.post(f"{self.config.url.rstrip('/')}/v2/alerts", body, headers=self._auth)

    async def note(self, item: OutboxItem, payload: Payload) -> None:
        body = {"note": clip(payload.text, 25000), "source": clip(payload.vantage, 100)}
        await self.post(self._alias_url(payload, "notes"), body, headers=self._auth)

    async def action(self, item: OutboxItem, payload: Payload) -> None:
        who_field = "acknowledged_by" if item.event == "acknowledge" else "resolved_by"
        body: dict[str, Any] = {
            "source": clip(payload.vantage, 100),
            "note": clip(payload.text, 25000),
        }
        who = payload.incident.get(who_field)
        if who:
            body["user"] = clip(str(who), 100)
        await self.post(self._alias_url(payload, _ACTIONS[item.event]), body, headers=self._auth)
