"""Scripted fault sequences for the simulator: the step type, the demo's default scenario and
the TOML loader.

A scenario file holds `[[step]]` tables::

    [[step]]
    at = 8            # seconds from the scenario's start
    channel = "api"   # api | smtp | both
    fault = "5xx"
    status = 503      # the fault's parameters, flat (or in a [step.params] table)
    note = "API outage"

`fraction`'s inner fault is written `inner = "5xx"` when flat (`fault` names the step's own).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.simulator.faults import parse_fault

_STEP_KEYS = {"at", "channel", "fault", "note", "params"}


@dataclass(frozen=True, slots=True)
class ScenarioStep:
    """Set `fault` (with `params`) on `channel` at `at` seconds after the scenario start."""

    at: float
    channel: str
    fault: str
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "channel": self.channel,
            "fault": self.fault,
            "params": dict(self.params),
            "note": self.note,
        }


#: The demo's ~60 s script. Expected ground truth, with one probe per channel at k=2:
#: api unavailable for seconds 8..13 (6 s), smtp for 20..25 (6 s), service 12 s; the
#: partial API failure (32..37) and the 401 spell (44..48) must not count.
DEFAULT_SCENARIO: list[ScenarioStep] = [
    ScenarioStep(0, "both", "ok", note="healthy start"),
    ScenarioStep(8, "api", "5xx", {"status": 503}, note="API outage: every call 503"),
    ScenarioStep(14, "api", "ok", note="API recovered"),
    ScenarioStep(20, "smtp", "hang", note="SMTP outage: injections hang after DATA"),
    ScenarioStep(26, "smtp", "ok", note="SMTP recovered"),
    ScenarioStep(
        32,
        "api",
        "fraction",
        {"fraction": 0.5, "fault": "5xx"},
        note="partial API failure: every other call 500, must not count",
    ),
    ScenarioStep(38, "api", "ok", note="API healthy"),
    ScenarioStep(44, "api", "4xx", {"status": 401}, note="revoked key (401), must not count"),
    ScenarioStep(49, "api", "ok", note="healthy to the end"),
]
#: how long the default scenario runs, including the tail that lets hung attempts time out
DEFAULT_SCENARIO_SECONDS = 60


def _step(path: str, i: int, raw: Any) -> ScenarioStep:
    where = f"{path}: step {i}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: must be a table")
    for key in ("at", "channel", "fault"):
        if key not in raw:
            raise ValueError(f"{where}: missing {key!r}")
    at = raw["at"]
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) or at < 0:
        raise ValueError(f"{where}: at={at!r} must be a number of seconds >= 0")
    channel, fault, note = raw["channel"], raw["fault"], raw.get("note", "")
    if not isinstance(channel, str) or not isinstance(fault, str) or not isinstance(note, str):
        raise ValueError(f"{where}: channel, fault and note must be strings")
    nested = raw.get("params", {})
    if not isinstance(nested, Mapping):
        raise ValueError(f"{where}: params must be a table")
    params = {k: v for k, v in raw.items() if k not in _STEP_KEYS} | dict(nested)
    try:
        parse_fault(channel, fault, params)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return ScenarioStep(float(at), channel, fault, params, note)


def load_scenario(path: str | Path) -> list[ScenarioStep]:
    """Read and validate a scenario TOML file; ValueError (one line) when it is unusable."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ValueError(f"{name}: cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{name}: not valid TOML: {e}") from None
    extra = sorted(set(doc) - {"step"})
    if extra:
        raise ValueError(f"{name}: unknown key {extra[0]!r} (only [[step]] tables)")
    steps = doc.get("step")
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"{name}: no [[step]] tables")
    out = [_step(name, i, raw) for i, raw in enumerate(steps, 1)]
    return sorted(out, key=lambda s: s.at)
