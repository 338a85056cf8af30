"""Generic webhook: the outbox payload as signed JSON, for receivers availmon does not know.

Request: ``POST {url}`` with ``Content-Type: application/json`` and headers

- ``X-Availmon-Event``: the event (trigger | update | acknowledge | recover | resolve)
- ``X-Availmon-Timestamp``: Unix seconds when this attempt was made
- ``X-Availmon-Signature: sha256=<hex>``: HMAC-SHA256 of the raw request body keyed with
  the notifier's ``secret`` (only when a secret is configured). Verify it over the bytes
  received, before parsing, with a constant-time comparison.
- any ``headers`` from the config.

Body, schema ``availmon.notification/v1``::

    {
      "schema": "availmon.notification/v1",
      "id": 42,                      # outbox item id: the same on every retry, dedupe on it
      "notifier": "ops-webhook",     # this notifier's name
      "seq": 3,                      # per-incident event sequence number
      "event": "trigger",            # trigger | update | acknowledge | recover | resolve
      "tier": "critical",            # critical | escalation | ticket
      "incident": {
        "id": 7, "service": "sparkpost-us", "severity": "critical",   # | "non_critical"
        "state": "open",             # open | acknowledged | recovered | resolved
        "kind": "unavailable",       # unavailable | failure_ratio | blind
        "dedup_key": "availmon/sparkpost-us/7",
        "opened_at": 1763894400.0, "acknowledged_at": null, "acknowledged_by": null,
        "recovered_at": null, "resolved_at": null, "resolved_by": null,
        "first_unavailable": 1763894370, "last_unavailable": 1763894399,
        "unavailable_seconds": 30, "ack_due_at": 1763895300.0, "ack_breached_at": null,
        "response_due_at": null, "summary": "…"
      },
      "summary": "one line",
      "text": "a few lines",
      "at": 1763894400.0,            # when the event happened (epoch seconds, UTC)
      "vantage": "monitor-1"         # the availmon instance that sent it
    }

Any 2xx is success; 429 (Retry-After honoured), 408 and 5xx are retried; other statuses
are permanent failures. Delivery is at-least-once: dedupe on ``id`` (or on
``incident.id`` + ``seq``).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from alerting.model import OutboxItem
from alerting.notifiers.base import (
    EVENTS,
    HttpNotifier,
    NotifierBase,
    Payload,
    encode_json,
    post_bytes,
)
from monitor.schema import HttpUrl, header_names, secret, secret_map


class WebhookConfig(NotifierBase):
    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    #: HMAC-SHA256 key; the signature goes in header X-Availmon-Signature: sha256=<hex>
    secret: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    _sec = field_validator("secret", mode="before")(classmethod(lambda cls, v: secret(v)))

    _hdr = field_validator("headers", mode="before")(classmethod(lambda cls, v: secret_map(v)))
    _hdr_names = field_validator("headers")(classmethod(lambda cls, v: header_names(v)))


SCHEMA = "availmon.notification/v1"


def signature(secret: str, body: bytes) -> str:
    """The X-Availmon-Signature value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(HttpNotifier):
    type = "webhook"
    config_model = WebhookConfig
    config: WebhookConfig
    handlers: ClassVar[dict[str, str]] = {e: "deliver" for e in EVENTS}

    def secrets(self) -> list[str]:
        values = [v.get_secret_value() for v in self.config.headers.values()]
        if self.config.secret is not None:
            values.append(self.config.secret.get_secret_value())
        return values

    async def deliver(self, item: OutboxItem, payload: Payload) -> None:
        envelope: dict[str, object] = {"schema": SCHEMA, "id": item.id, "notifier": self.name}
        # the envelope keys win: a payload can never forge the schema or delivery id
        envelope.update((k, v) for k, v in item.payload.items() if k not in envelope)
        body = encode_json(envelope)
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        headers["X-Availmon-Event"] = item.event
        headers["X-Availmon-Timestamp"] = str(int(self.clock.wall()))
        if self.config.secret is not None:
            headers["X-Availmon-Signature"] = signature(self.config.secret.get_secret_value(), body)
        await post_bytes(
            self.session,
            self.config.url,
            body,
            clock=self.clock,
            timeout=self.config.timeout_seconds,
            headers=headers,
            secrets=self.secrets(),
        )
