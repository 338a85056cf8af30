"""PromQL text and a real Prometheus for the grafana/ tests: names, Grafana variables, processes.

Metric names are pulled out of PromQL with a small tokenizer (no PromQL parser exists in
Python); whether an expression *parses* is left to a real Prometheus (`PrometheusProcess`).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.loopback import free_port

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "availmon.json"
RULES = sorted((GRAFANA / "prometheus" / "rules").glob("*.yml"))
DATASOURCE_UID = "availmon-prometheus"
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
AMTOOL = "/usr/bin/amtool"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"

# ARCHITECTURE.md "Metrics": the only names dashboards and rules may query.
CONTRACT_METRICS = frozenset(
    {
        "availmon_attempts_total",
        "availmon_attempt_duration_seconds",
        "availmon_seconds_total",
        "availmon_available",
        "availmon_verdict",
        "availmon_month_unavailable_seconds",
        "availmon_month_error_budget_seconds",
        "availmon_loop_lag_seconds",
        "availmon_last_final_second_timestamp_seconds",
        "availmon_incidents_open",
        "availmon_notifications_total",
        "availmon_launches_skipped_total",
        "availmon_leader",
        "availmon_leader_changes_total",
        "availmon_combine_lag_seconds",
        "availmon_combine_late_total",
        "availmon_blocklist_listed",
        "availmon_blocklist_checks_total",
    }
)
CONTRACT_HISTOGRAMS = (
    "availmon_attempt_duration_seconds",
    "availmon_loop_lag_seconds",
    "availmon_combine_lag_seconds",
)
CONTRACT_SERIES = CONTRACT_METRICS | {
    f"{h}{suffix}" for h in CONTRACT_HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")
}

# Grafana's global variables and the values the tests give them.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__interval_ms": "15000",
    "__range_s": "3600",
}

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "inf",
        "nan",
        "atan2",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(
    r"(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)|(?P<id>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<other>\S)"
)
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def metric_names(expr: str) -> set[str]:
    """The metric (and recorded-rule) names an expression selects."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    tokens = [m for m in _TOKEN.finditer(text)]
    for i, m in enumerate(tokens):
        name = m.group("id")
        if name is None or name.lower() in _KEYWORDS:
            continue
        nxt = tokens[i + 1].group("other") if i + 1 < len(tokens) else None
        if nxt == "(":
            continue  # a function or an aggregation
        names.add(name)
    return names


def variables(text: str) -> set[str]:
    """Grafana variable names referenced in a text ($name, ${name}, ${name:fmt}, [[name]])."""
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(text)}


def fill_variables(text: str, values: dict[str, str]) -> str:
    """Replace Grafana variables the way Grafana would, from `values` and the built-ins."""
    table = {**GRAFANA_BUILTINS, **values}

    def repl(m: re.Match[str]) -> str:
        name = next(g for g in m.groups() if g)
        if name not in table:
            raise KeyError(f"no value for Grafana variable ${name}")
        return table[name]

    return _VARIABLE.sub(repl, text)


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) of every panel target."""
    out = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    return out


def label_values(query: str) -> tuple[str, str]:
    """(selector, label) of a Grafana `label_values(selector, label)` variable query."""
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
    if m is None:
        raise ValueError(f"not a label_values() query: {query}")
    return m.group(1), m.group(2)


def load_rules(paths: list[Path] = RULES) -> list[dict[str, Any]]:
    rules = []
    for path in paths:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def recorded_names(paths: list[Path] = RULES) -> set[str]:
    return {r["record"] for r in load_rules(paths) if "record" in r}


# ----------------------------------------------------------------------------- processes


def http_json(url: str, data: dict[str, str] | None = None, timeout: float = 10) -> Any:
    """GET (or form POST) a URL and decode its JSON; HTTP errors still return their body."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(url, data=body, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"{}")


def wait_until(check: Any, *, tries: int, every: float, what: str) -> Any:
    """Call `check` until it returns something truthy; bounded in count and time."""
    last: Any = None
    for _ in range(tries):
        try:
            last = check()
        except (OSError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"gave up waiting for {what} after {tries} tries: {last!r}")


class PrometheusProcess:
    """A real Prometheus on a free loopback port, with a given config; stopped by PID."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._ready, tries=300, every=0.1, what="Prometheus /-/ready")
        except AssertionError:
            self.stop()
            raise AssertionError(f"Prometheus did not start: {self.log()}") from None

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"Prometheus exited: {self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """An instant query; returns Prometheus's whole JSON answer (status, data, error)."""
        form = {"query": expr}
        if at is not None:
            form["time"] = f"{at:.3f}"
        answer: dict[str, Any] = http_json(f"{self.url}/api/v1/query", form)
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def prometheus_config(target: str, rule_files: list[Path], interval: str = "1s") -> dict[str, Any]:
    """The shipped example config, pointed at `target`, with absolute rule paths."""
    config: dict[str, Any] = yaml.safe_load((GRAFANA / "prometheus" / "prometheus.yml").read_text())
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str(p) for p in rule_files]
    config.pop("alerting", None)
    config["scrape_configs"][0]["static_configs"] = [{"targets": [target]}]
    return config
