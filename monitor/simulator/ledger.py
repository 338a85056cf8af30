"""What the simulator did to each attempt, and the ground truth that follows from it.

The ledger keys an attempt by the id the client sent (`{probe}:{second}:{slot}@{vantage}`,
header `X-Availmon-Attempt`; the `@{vantage}` suffix is optional: older clients and tests
send none and may name their vantage in `X-Availmon-Vantage`, which wins); an attempt
faulted before its id arrived (an SMTP fault at the banner, EHLO, MAIL or RCPT stage, a
failed STARTTLS) is logged unkeyed and stays out of the truth.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from monitor.simulator.faults import CHANNELS
from probes.base import Outcome

# The SMTP probe's Message-ID replaces ':' with '_' and '@' with '=' (neither is allowed
# there), so both spellings are accepted; `second` and `slot` are digits and a vantage name
# has neither ':' nor '@' nor '=', so splitting from the right is unambiguous.
_ATTEMPT_RE = re.compile(
    r"^(?P<probe>[A-Za-z0-9_.:-]+)[:_](?P<second>\d{1,12})[:_](?P<slot>\d{1,6})"
    r"(?:[@=](?P<vantage>[A-Za-z0-9_.-]{1,255}))?$"
)

#: log records kept in memory (the ground truth itself is kept apart and is not trimmed)
DEFAULT_MAX_LOG = 250_000
#: seconds of ground truth kept per channel (about 23 days)
MAX_TRUTH_SECONDS = 2_000_000
#: how far behind the newest second a repeated attempt id is still recognised
RETRY_WINDOW_SECONDS = 300


def parse_attempt_id(attempt_id: str) -> tuple[str, int, int] | None:
    """(probe, second, slot) of an attempt id, or None when it is not one."""
    m = _ATTEMPT_RE.match(attempt_id)
    if m is None:
        return None
    return sys.intern(m["probe"]), int(m["second"]), int(m["slot"])


def attempt_vantage(attempt_id: str) -> str | None:
    """The vantage an attempt id names (``…@vantage``), or None."""
    m = _ATTEMPT_RE.match(attempt_id)
    return None if m is None or m["vantage"] is None else sys.intern(m["vantage"])


@dataclass(slots=True)
class LogRecord:
    """One attempt as the simulator saw it. `expected` is the outcome the SLA rules give
    what the simulator did; `second` is None for an unkeyed attempt."""

    seq: int
    attempt_id: str | None
    channel: str
    probe: str | None
    second: int | None
    slot: int | None
    vantage: str | None
    received_at: float  # wall clock
    fault: str  # the fault in force on the channel
    reply: str  # what the client got: "200", "421 4.3.3", "hang", "reset", ...
    expected: Outcome

    @property
    def keyed(self) -> bool:
        return self.second is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "attempt_id": self.attempt_id,
            "channel": self.channel,
            "probe": self.probe,
            "second": self.second,
            "slot": self.slot,
            "vantage": self.vantage,
            "received_at": self.received_at,
            "fault": self.fault,
            "reply": self.reply,
            "expected": str(self.expected),
        }


class _Tally:
    """One channel's truth: per second, how many keyed attempts and how many qualifying.

    An attempt id that arrives again (aiohttp re-sends an idempotent request once after a
    reset or a dropped connection, with the same header) is one attempt whose last arrival
    decides, as it is the one the client saw. Per-attempt memory is kept only for the
    seconds near the newest one, so the truth stays O(seconds).
    """

    def __init__(self) -> None:
        self.cells: dict[int, list[int]] = {}  # second → [attempts, qualifying]
        self._recent: dict[int, dict[tuple[str | None, str], bool]] = {}
        self._newest = -1

    def add(self, second: int, key: tuple[str | None, str], qualifying: bool) -> None:
        if second > self._newest:
            self._newest = second
            horizon = second - RETRY_WINDOW_SECONDS
            for old in [s for s in self._recent if s < horizon]:
                del self._recent[old]
        cell = self.cells.get(second)
        if cell is None:
            if len(self.cells) >= MAX_TRUTH_SECONDS:
                for old in sorted(self.cells)[: MAX_TRUTH_SECONDS // 2]:
                    del self.cells[old]
            cell = self.cells[second] = [0, 0]
        seen = None
        if second >= self._newest - RETRY_WINDOW_SECONDS:
            attempts = self._recent.setdefault(second, {})
            seen = attempts.get(key)
            attempts[key] = qualifying
        if seen is None:
            cell[0] += 1
            cell[1] += qualifying
        else:
            cell[1] += qualifying - seen

    def unavailable(self, lo: int, hi: int) -> set[int]:
        return {s for s, (n, bad) in self.cells.items() if n and n == bad and lo <= s < hi}


class Ledger:
    """The bounded attempt log, per-channel counters and per-second truth tallies."""

    def __init__(self, max_log: int = DEFAULT_MAX_LOG) -> None:
        if max_log < 2:
            raise ValueError("max_log must be at least 2")
        self.max_log = max_log
        self.log: list[LogRecord] = []
        self._seq = 0
        self._tally: dict[str, _Tally] = {ch: _Tally() for ch in CHANNELS}
        self.counts: dict[str, dict[str, int]] = {
            ch: {"attempts": 0, "keyed": 0} | {str(o): 0 for o in Outcome} for ch in CHANNELS
        }

    def record(
        self,
        channel: str,
        attempt_id: str | None,
        vantage: str | None,
        received_at: float,
        fault: str,
        reply: str,
        expected: Outcome,
    ) -> LogRecord:
        parsed = parse_attempt_id(attempt_id) if attempt_id else None
        probe, second, slot = parsed if parsed else (None, None, None)
        if vantage is None and attempt_id and parsed:
            vantage = attempt_vantage(attempt_id)  # the id names it; the header wins
        self._seq += 1
        rec = LogRecord(
            self._seq,
            attempt_id,
            channel,
            probe,
            second,
            slot,
            vantage,
            received_at,
            fault,
            reply,
            expected,
        )
        log = self.log
        log.append(rec)
        if len(log) > self.max_log:
            # trim half at once: amortised O(1), and `log` stays a plain list
            del log[: self.max_log // 2]
        counts = self.counts[channel]
        counts["attempts"] += 1
        counts[expected.value] += 1
        if second is not None:
            counts["keyed"] += 1
            assert attempt_id is not None  # parsed from it
            self._tally[channel].add(second, (vantage, attempt_id), expected.qualifying)
        return rec

    def since(self, seq: int, limit: int) -> list[LogRecord]:
        """Records with `seq` > the given one, oldest first, at most `limit`."""
        log = self.log
        if not log or seq >= log[-1].seq:
            return []
        # seqs are consecutive inside the list, so the start index is arithmetic
        start = max(0, seq - log[0].seq + 1)
        return log[start : start + limit]

    def truth(self, start: int | None = None, end: int | None = None) -> dict[str, set[int]]:
        """Unavailable seconds per channel in [start, end): a second is unavailable when it
        has ≥1 keyed attempt and every keyed attempt of it is a qualifying failure (an
        attempt id seen twice counts once, by its last arrival); `service` is the union
        (combine `any`)."""
        lo = start if start is not None else -(1 << 62)
        hi = end if end is not None else 1 << 62
        out: dict[str, set[int]] = {}
        for ch, tally in self._tally.items():
            out[ch] = tally.unavailable(lo, hi)
        out["service"] = set().union(*(out[ch] for ch in CHANNELS))
        return out
