"""What the detector says of a second: the verdict vocabulary shared by every consumer.

A `SecondVerdict` is emitted once per (service, channel, second), in order, never revised.
`channel` is a probe channel (`api`, `smtp`) or `service` for the service's combined verdict.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SERVICE_CHANNEL = "service"
CHANNELS = ("api", "smtp")
#: the vantage name of the verdicts combined out of every vantage's by the quorum
#: (monitor/quorum.py); no vantage point may be called so (monitor/config.py)
COMBINED = "combined"


class Verdict(enum.StrEnum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


class UnknownReason(enum.StrEnum):
    NOT_LAUNCHED = "not_launched"
    MONITOR_DOWN = "monitor_down"
    PROBE_ERROR = "probe_error"
    MONITOR_STALLED = "monitor_stalled"
    CLOCK_STEP = "clock_step"
    CONTROL_FAILED = "control_failed"


@dataclass(frozen=True, slots=True)
class SecondVerdict:
    """The final verdict of one second of one channel (or of the service).

    `counts` maps outcome name → attempts of that outcome in the second (empty for the
    service channel's combined verdict). `degraded` is true when the second is not
    unavailable but held at least one qualifying failure. `excluded` is true when the
    second lies in a maintenance window: it keeps its verdict, but the SLA and the
    incident policies skip it.
    """

    service: str
    channel: str
    second: int
    verdict: Verdict
    vantage: str
    reason: UnknownReason | None = None
    degraded: bool = False
    excluded: bool = False
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def unavailable(self) -> bool:
        return self.verdict is Verdict.UNAVAILABLE

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "channel": self.channel,
            "t": self.second,
            "verdict": str(self.verdict),
            "vantage": self.vantage,
            "reason": str(self.reason) if self.reason else None,
            "degraded": self.degraded,
            "excluded": self.excluded,
            "counts": dict(self.counts),
        }


@dataclass(frozen=True, slots=True)
class Run:
    """Seconds first..last (inclusive) of one (service, channel, vantage) share a verdict."""

    service: str
    channel: str
    vantage: str
    verdict: Verdict
    reason: UnknownReason | None
    first: int
    last: int

    @property
    def seconds(self) -> int:
        return self.last - self.first + 1
