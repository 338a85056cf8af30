"""The notifier registry: a config ``type`` → the class that delivers to that receiver.

Every class is built the same way, ``NOTIFIERS[cfg.type](cfg, session, clock)``, and
follows `alerting.notifiers.base.Notifier`. `build_notifiers` builds and validates all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import aiohttp

from alerting.notifiers.alertmanager import AlertmanagerNotifier
from alerting.notifiers.base import Notifier, NotifierBase, NotifierType, TransportError
from alerting.notifiers.email import EmailNotifier
from alerting.notifiers.opsgenie import OpsgenieNotifier
from alerting.notifiers.pagerduty import PagerDutyNotifier
from alerting.notifiers.slack import SlackNotifier
from alerting.notifiers.webhook import WebhookNotifier
from monitor.clock import Clock

#: config `type` → the notifier class (one line per notifier module)
NOTIFIERS: Mapping[str, NotifierType] = {
    "pagerduty": PagerDutyNotifier,
    "opsgenie": OpsgenieNotifier,
    "alertmanager": AlertmanagerNotifier,
    "slack": SlackNotifier,
    "webhook": WebhookNotifier,
    "email": EmailNotifier,
}


def build_notifiers(
    configs: Iterable[NotifierBase], session: aiohttp.ClientSession, clock: Clock
) -> dict[str, Notifier]:
    """name → notifier for every config; raises `ConfigError` (one line) for a bad one."""
    built: dict[str, Notifier] = {}
    for cfg in configs:
        notifier = NOTIFIERS[cfg.type](cfg, session, clock)
        notifier.validate()
        built[cfg.name] = notifier
    return built


__all__ = ["NOTIFIERS", "Notifier", "TransportError", "build_notifiers"]
