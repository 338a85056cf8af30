"""`availmon notify test`: prove the paging path before it is needed.

Each notifier (or the one named) gets one clearly marked test notification, through the
same notifier code and the same config as a real incident's: a ``trigger`` whose summary
starts with ``[TEST]`` and whose incident is no incident (id 0, dedup key
``availmon/test/<service>/<epoch>``, service ``availmon-test``), then, for receivers that
open an alert and keep it open (PagerDuty, Opsgenie, Alertmanager), a ``resolve`` of the
same key, so the test leaves nothing open. Nothing is written to the store. The outcome
of each send is returned (and printed by the CLI, one line per notifier).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from alerting.model import OutboxItem
from alerting.notifiers import build_notifiers
from alerting.notifiers.base import NotifierBase, TransportError
from monitor.clock import Clock

#: receivers that keep an alert open until told to resolve it
STATEFUL = frozenset({"pagerduty", "opsgenie", "alertmanager"})
TEST_SERVICE = "availmon-test"


@dataclass(frozen=True)
class TestResult:
    notifier: str
    type: str
    events: tuple[str, ...]
    ok: bool
    detail: str
    seconds: float

    def line(self) -> str:
        sent = " and ".join(self.events)
        if self.ok:
            return f"{self.notifier} ({self.type}): sent {sent} in {self.seconds:.2f} s"
        return f"{self.notifier} ({self.type}): FAILED: {self.detail}"


def _item(config: NotifierBase, event: str, now: float, seq: int) -> OutboxItem:
    key = f"availmon/test/{TEST_SERVICE}/{int(now)}"
    tier = config.tiers[0]
    summary = (
        f"[TEST] availmon notification test of {config.name}: no incident, nothing to do"
        if event == "trigger"
        else f"[TEST] availmon notification test of {config.name}: resolved"
    )
    incident = {
        "id": 0,
        "service": TEST_SERVICE,
        "severity": "critical" if tier in ("critical", "escalation") else "non_critical",
        "state": "open" if event == "trigger" else "resolved",
        "kind": "test",
        "dedup_key": key,
        "opened_at": now,
        "summary": summary,
    }
    payload = {
        "seq": seq,
        "event": event,
        "tier": tier,
        "incident": incident,
        "summary": summary,
        "text": (
            "This is a test notification sent by `availmon notify test` to prove the paging "
            "path. It is not an incident; no action is needed."
        ),
        "at": now,
        "vantage": "availmon notify test",
        "test": True,
    }
    return OutboxItem(0, 0, config.name, event, payload, now, now)


async def test_notifiers(
    configs: Sequence[NotifierBase], clock: Clock, names: Sequence[str] = ()
) -> list[TestResult]:
    """Send the test to every notifier of `configs` (or those named), one after another."""
    chosen = [c for c in configs if not names or c.name in names]
    results: list[TestResult] = []
    async with aiohttp.ClientSession() as session:
        notifiers = build_notifiers(chosen, session, clock)
        try:
            for config in chosen:
                notifier = notifiers[config.name]
                events = ("trigger", "resolve") if config.type in STATEFUL else ("trigger",)
                started = time.perf_counter()
                now = clock.wall()
                done: list[str] = []
                try:
                    for seq, event in enumerate(events, start=1):
                        await notifier.send(_item(config, event, now, seq))
                        done.append(event)
                except Exception as exc:  # every failure is a line, not a traceback
                    # a TransportError's message is redacted by its notifier; of anything
                    # else only the type is shown (its text might hold a secret URL)
                    why = exc.message if isinstance(exc, TransportError) else type(exc).__name__
                    results.append(
                        TestResult(
                            config.name, config.type, tuple(done), False, why,
                            time.perf_counter() - started,
                        )
                    )  # fmt: skip
                    continue
                results.append(
                    TestResult(
                        config.name, config.type, tuple(done), True, "",
                        time.perf_counter() - started,
                    )
                )  # fmt: skip
        finally:
            for notifier in notifiers.values():
                await notifier.close()
    return results
