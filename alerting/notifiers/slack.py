"""Slack incoming webhook: one message per incident event, ``{"text", "blocks"}``.

Every event is posted (trigger, update, acknowledge, recover, resolve); the text is the
event's one-line summary, the blocks add the multi-line text and the incident's facts.
Slack answers exactly 200 ``ok``; anything else is a failure (400 invalid_payload and
403/404/410 are permanent, 429 and 5xx retried). The webhook URL is the secret: errors
name only its host.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import SecretStr, field_validator
from yarl import URL

from alerting.model import OutboxItem
from alerting.notifiers.base import HttpNotifier, NotifierBase, Payload, clip
from monitor.schema import ConfigError, secret


class SlackConfig(NotifierBase):
    type: Literal["slack"] = "slack"
    webhook_url: SecretStr
    _sec = field_validator("webhook_url", mode="before")(classmethod(lambda cls, v: secret(v)))


_EMOJI = {
    "trigger": ":rotating_light:",
    "update": ":hourglass_flowing_sand:",
    "acknowledge": ":eyes:",
    "recover": ":large_green_circle:",
    "resolve": ":white_check_mark:",
}


class SlackNotifier(HttpNotifier):
    type = "slack"
    config_model = SlackConfig
    config: SlackConfig
    handlers: ClassVar[dict[str, str]] = {e: "message" for e in _EMOJI}

    def validate(self) -> None:
        url = URL(self.config.webhook_url.get_secret_value())
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"notifiers.{self.name}.webhook_url: needs an https:// URL")

    def secrets(self) -> list[str]:
        url = self.config.webhook_url.get_secret_value()
        return [url, URL(url).path]

    async def message(self, item: OutboxItem, payload: Payload) -> None:
        inc = payload.incident
        facts = (
            f"*service* {payload.service} · *severity* {payload.severity} · "
            f"*state* {inc.get('state', '?')} · *incident* {inc.get('id', '?')} · "
            f"*vantage* {payload.vantage}"
        )
        blocks: list[dict[str, Any]] = [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": clip(f"{_EMOJI[item.event]} *{payload.summary}*", 3000),
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(payload.text, 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(facts, 3000)}]},
        ]
        body = {"text": clip(payload.summary, 3000), "blocks": blocks}
        await self.post(self.config.webhook_url.get_secret_value(), body, ok=(200,))
