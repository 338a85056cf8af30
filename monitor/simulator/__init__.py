"""The built-in simulated email platform: a SparkPost-like REST API and SMTP injection
listener on loopback that fail exactly as told, and know the ground truth of what they did.

Used by `availmon simulate`, by `availmon demo` (which compares the daemon's unavailable
seconds with `Simulator.ground_truth`) and by tests and benchmarks as a real target.

Modules: `faults` (the fault vocabulary and expected outcomes), `ledger` (attempt log and
truth), `scenario` (scripted faults), `api` / `smtp` (the two servers), `certs` (STARTTLS
certificate), `wire` (RST and hang), `server` (`Simulator`, `serve`).
"""

from __future__ import annotations

from monitor.simulator.faults import FAULT_DOCS, FAULT_NAMES, SMTP_STAGES
from monitor.simulator.ledger import LogRecord, parse_attempt_id
from monitor.simulator.scenario import (
    DEFAULT_SCENARIO,
    DEFAULT_SCENARIO_SECONDS,
    ScenarioStep,
    load_scenario,
)
from monitor.simulator.server import Simulator, serve

__all__ = [
    "DEFAULT_SCENARIO",
    "DEFAULT_SCENARIO_SECONDS",
    "FAULT_DOCS",
    "FAULT_NAMES",
    "SMTP_STAGES",
    "LogRecord",
    "ScenarioStep",
    "Simulator",
    "load_scenario",
    "parse_attempt_id",
    "serve",
]
