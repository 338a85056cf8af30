"""A month of seconds produced the way the daemon produces it: synthetic attempts through the
real Detector into a real SQLite store, with the daemon's restart-gap filling."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Settings, parse
from monitor.detector import Detector
from monitor.store import open_store
from monitor.store.base import MinuteCount, Store
from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict, UnknownReason
from probes.base import Attempt, Outcome

#: what a failing attempt says, per channel and outcome (the evidence the report quotes)
FAIL_DETAIL: dict[tuple[str, Outcome], dict[str, Any]] = {
    ("api", Outcome.SERVER_ERROR): {"status": 503},
    ("api", Outcome.TIMEOUT): {"error": "TimeoutError", "stage": "headers"},
    ("smtp", Outcome.SERVER_ERROR): {"code": 421, "enhanced": "4.3.2", "stage": "data"},
    ("smtp", Outcome.TIMEOUT): {"error": "SMTPTimeoutError", "stage": "banner"},
}
NO_ATTEMPT = None  # a stretch in which nothing was launched (the detector says not_launched)


def T(iso: str) -> int:
    """Epoch second of an ISO-8601 time with offset ('Z' allowed)."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def service(name: str, *, smtp: bool = True, k: int | None = 1) -> dict[str, Any]:
    """A service's config: probe ``api-1`` and, with `smtp`, ``smtp-1``; `k` attempts a
    second each (None: the default)."""
    rate = {} if k is None else {"attempts_per_second": k}
    probes: list[dict[str, Any]] = [
        {"name": "api-1", "type": "http", "url": "http://127.0.0.1:1/", **rate}
    ]
    if smtp:
        probes.append({"name": "smtp-1", "type": "smtp", "host": "127.0.0.1", **rate})
    return {"name": name, "probes": probes}


def settings_for(
    *,
    timezone: str = "UTC",
    merge_gap: int = 0,
    credits: Sequence[dict[str, float]] = (),
    **extra: Any,
) -> Settings:
    return parse(
        {
            "monitor": {"vantage": "v1"},
            "report": {
                "timezone": timezone,
                "merge_gap_seconds": merge_gap,
                "credits": list(credits),
            },
            "services": [service("mail")],
            **extra,
        }
    )


@dataclass
class Pattern:
    """Per channel, stretches [a, b) whose attempts end with an outcome (None: no attempt);
    every other second of a channel is ok."""

    stretches: dict[str, list[tuple[int, int, Outcome | None]]] = field(default_factory=dict)

    def add(self, channel: str, a: int, b: int, outcome: Outcome | None) -> Pattern:
        self.stretches.setdefault(channel, []).append((a, b, outcome))
        self.stretches[channel].sort(key=lambda s: s[0])
        return self

    def outcomes(self, channel: str, start: int, end: int) -> Iterator[tuple[int, Outcome | None]]:
        """(second, outcome) for every second of [start, end), cheaply."""
        spans = self.stretches.get(channel, [])
        i = bisect.bisect_left([s[1] for s in spans], start + 1)
        t = start
        while t < end:
            while i < len(spans) and spans[i][1] <= t:
                i += 1
            if i < len(spans) and spans[i][0] <= t:
                _, b, outcome = spans[i]
                for s in range(t, min(b, end)):
                    yield s, outcome
                t = min(b, end)
            else:
                nxt = spans[i][0] if i < len(spans) else end
                for s in range(t, min(nxt, end)):
                    yield s, Outcome.OK
                t = min(nxt, end)


class Feeder:
    """Runs the daemon's data path for chosen stretches of time: a fresh Detector per
    stretch (a daemon start), the restart gap filled unknown(monitor_down) as the daemon
    does, verdicts / evidence / per-minute counts written to the store."""

    def __init__(self, settings: Settings, store: Store, vantage: str = "v1") -> None:
        self.settings = settings
        self.store = store
        self.vantage = vantage
        self.verdicts: list[SecondVerdict] = []
        self.evidence: list[Attempt] = []
        self.counts: Counter[tuple[str, str, str, int, str]] = Counter()

    def _sink(self, second: int, verdicts: list[SecondVerdict], evidence: list[Attempt]) -> None:
        self.verdicts.extend(verdicts)
        self.evidence.extend(evidence)
        if len(self.verdicts) > 60_000:
            self.flush()

    def flush(self) -> None:
        self.store.write_verdicts(self.verdicts)
        self.store.write_evidence(self.evidence)
        self.store.write_minute_counts(MinuteCount(*k, n) for k, n in self.counts.items())
        self.verdicts, self.evidence, self.counts = [], [], Counter()

    def _fill_restart_gap(self, start: int) -> None:
        for svc in self.settings.services:
            for channel in [*svc.channels, SERVICE_CHANNEL]:
                last = self.store.last_second(svc.name, channel, self.vantage)
                if last is not None and last + 1 <= start - 1:
                    self.store.fill_unknown(
                        svc.name,
                        channel,
                        self.vantage,
                        last + 1,
                        start - 1,
                        UnknownReason.MONITOR_DOWN,
                    )

    def run(self, start: int, end: int, pattern: Pattern) -> None:
        self._fill_restart_gap(start)
        detector = Detector(self.settings.services, self.vantage, self._sink, start_second=start)
        feeds = []
        for svc in self.settings.services:
            for probe in svc.probes:
                if probe.enabled and probe.channel in ("api", "smtp"):
                    feeds.append(
                        (
                            svc.name,
                            probe.channel,
                            probe.name,
                            probe.attempts_per_second,
                            pattern.outcomes(probe.channel, start, end),
                        )
                    )
        while True:
            second = None
            for service, channel, probe_name, k, it in feeds:
                item = next(it, None)
                if item is None:
                    continue
                second, outcome = item
                if outcome is None:
                    continue
                detail = FAIL_DETAIL.get((channel, outcome), {})
                for slot in range(k):  # every slot of the second ends the same way
                    detector.completed(
                        Attempt(
                            f"{probe_name}:{second}:{slot}@{self.vantage}",
                            service,
                            channel,
                            probe_name,
                            second,
                            slot,
                            outcome,
                            0.05,
                            second + slot / k,
                            detail,
                            vantage=self.vantage,
                        )
                    )
                self.counts[(service, channel, probe_name, second - second % 60, str(outcome))] += k
            if second is None:
                break
            detector.advance(second + 1.0)
        detector.advance(float(end))
        self.flush()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'availmon.db'}")
    yield s
    s.close()
