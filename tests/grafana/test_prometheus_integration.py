"""availmon → a real Prometheus with the shipped rules, against the simulator, end to end.

It proves what a dashboard or an alert reads is what availmon decided: every dashboard and
rule expression parses and (where data is expected) returns data; the unavailable seconds
Prometheus saw equal the daemon's own per-second record; a long outage makes the burn-rate
page pending; `promtool check metrics` finds nothing to report in /metrics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.grafana.promkit import (
    PROMTOOL,
    RULES,
    PrometheusProcess,
    dashboard_queries,
    fill_variables,
    free_port,
    http_json,
    label_values,
    load_dashboard,
    load_rules,
    prometheus_config,
    wait_until,
)

pytestmark = [pytest.mark.external, pytest.mark.slow]

SERVICE = "mail"
VANTAGE = "rack-1"
#: long enough for a Critical Issue (30 of 60 s by default) and a 14.4x burn
OUTAGE_SECONDS = 40
#: the test's Prometheus has lived about two minutes: windows that fit in it
VALUES = {
    "service": SERVICE,
    "slo_target": "99.99",
    "channel": "api",
    "vantage": f"({VANTAGE})",  # Grafana's "All" of one value
    "__rate_interval": "20s",
    "__interval": "5s",
    "__range": "30s",
}
#: no notifier is configured here, so notification panels are rightly empty; a lone
#: instance leads and combines nothing (its own verdicts are the combined ones)
NO_DATA_EXPECTED = (
    "availmon_notifications_total",
    "availmon_combine_lag_seconds",
    "availmon_combine_late_total",
    # no blocklist check is configured here (tests/monitor/test_daemon_blocklist.py)
    "availmon_blocklist_listed",
    "availmon_blocklist_checks_total",
)


@dataclass
class Stack:
    sim_url: str
    daemon_url: str
    prom: PrometheusProcess


def _start(args: list[str], cwd: Path, name: str) -> subprocess.Popen[bytes]:
    log = (cwd / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _alive(proc: subprocess.Popen[bytes], cwd: Path, name: str) -> None:
    if proc.poll() is not None:
        log = (cwd / f"{name}.log").read_text(errors="replace")[-2000:]
        raise AssertionError(f"{name} exited with {proc.returncode}: {log}")


def _config(tmp: Path, listen: int, http_port: int, smtp_port: int) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[monitor]
listen = "127.0.0.1:{listen}"
vantage = "{VANTAGE}"

[store]
url = "sqlite:///{tmp}/a.db"

[report]
dir = "{tmp}/reports"

[[services]]
name = "{SERVICE}"

[[services.probes]]
type = "http"
name = "api"
channel = "api"
url = "http://127.0.0.1:{http_port}/api/v1/account"
timeout_seconds = 1

[[services.probes]]
type = "smtp"
name = "smtp"
channel = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
timeout_seconds = 2
"""
    )
    return path


def _fault(sim_url: str, channel: str, fault: str) -> None:
    req = urllib.request.Request(
        f"{sim_url}/_sim/fault",
        data=json.dumps({"channel": channel, "fault": fault}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _value(prom: PrometheusProcess, expr: str) -> float | None:
    answer = prom.query(expr)
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _raw(prom: PrometheusProcess, selector: str, window: str = "1h") -> dict[float, float]:
    """Raw scraped samples of one series: {scrape timestamp: value}."""
    answer = prom.query(f"{selector}[{window}]")
    assert answer["status"] == "success", answer
    (series,) = answer["data"]["result"]
    return {float(t): float(v) for t, v in series["values"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    http_port, smtp_port, listen = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    prom: PrometheusProcess | None = None
    try:
        sim = _start(
            ["simulate", "--host", "127.0.0.1", "--http-port", str(http_port),
             "--smtp-port", str(smtp_port)],
            tmp, "simulate",
        )  # fmt: skip
        procs.append(sim)
        sim_url = f"http://127.0.0.1:{http_port}"

        def sim_ready() -> bool:
            _alive(sim, tmp, "simulate")
            return bool(http_json(f"{sim_url}/_sim/state", timeout=2))

        wait_until(sim_ready, tries=150, every=0.2, what="the simulator")
        daemon = _start(["run", "-c", str(_config(tmp, listen, http_port, smtp_port))], tmp, "run")
        procs.append(daemon)
        daemon_url = f"http://127.0.0.1:{listen}"

        def daemon_ready() -> bool:
            _alive(daemon, tmp, "run")
            with urllib.request.urlopen(f"{daemon_url}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)

        wait_until(daemon_ready, tries=150, every=0.2, what="availmon run")
        prom = PrometheusProcess(tmp, prometheus_config(f"127.0.0.1:{listen}", RULES, "1s"))
        yield Stack(sim_url, daemon_url, prom)
    finally:
        if prom is not None:
            prom.stop()
        for proc in reversed(procs):
            _stop(proc)


@pytest.fixture(scope="module")
def outage(stack: Stack) -> dict[str, float]:
    """Ten available seconds, then an API outage of OUTAGE_SECONDS, then recovery, all
    seen by Prometheus. Returns the scrape timestamps bracketing it."""
    prom = stack.prom
    sel = f'availmon_seconds_total{{service="{SERVICE}",channel="service",vantage="combined"'
    wait_until(
        lambda: (_value(prom, f'{sel},verdict="available"}}') or 0) >= 10,
        tries=300, every=0.5, what="10 available seconds in Prometheus",
    )  # fmt: skip
    _fault(stack.sim_url, "api", "5xx")
    wait_until(
        lambda: (_value(prom, f'{sel},verdict="unavailable"}}') or 0) >= OUTAGE_SECONDS,
        tries=400, every=0.5, what=f"{OUTAGE_SECONDS} unavailable seconds in Prometheus",
    )  # fmt: skip
    _fault(stack.sim_url, "both", "ok")
    recovered_from = _value(prom, f'{sel},verdict="available"}}') or 0
    wait_until(
        lambda: (_value(prom, f'{sel},verdict="available"}}') or 0) >= recovered_from + 8,
        tries=300, every=0.5, what="8 available seconds after the outage",
    )  # fmt: skip
    return {"recovered_from": recovered_from}


def test_unavailable_seconds_in_prometheus_equal_the_daemons_own(
    stack: Stack, outage: dict[str, float]
) -> None:
    """Raw counter deltas between two scrapes equal the daemon's per-second record over
    exactly the seconds finalised between those scrapes (last final second L1 < t <= L2)."""
    prom = stack.prom
    last_final = _raw(
        prom,
        f'availmon_last_final_second_timestamp_seconds{{service="{SERVICE}",vantage="combined"}}',
    )
    stamps = sorted(last_final)
    t1, t2 = stamps[0], stamps[-1]
    l1, l2 = int(last_final[t1]), int(last_final[t2])
    url = f"{stack.daemon_url}/api/v1/seconds?service={SERVICE}&from={l1 + 1}&to={l2 + 1}"

    def final_rows() -> list[dict[str, Any]] | None:
        # the store may commit a moment after the metrics moved: wait for every second
        rows: list[dict[str, Any]] = http_json(url)["seconds"]
        return rows if [r["t"] for r in rows] == list(range(l1 + 1, l2 + 1)) else None

    rows = wait_until(final_rows, tries=40, every=0.5, what="the daemon's rows of those seconds")
    for channel, key in (("service", "verdict"), ("api", "api"), ("smtp", "smtp")):
        counter = _raw(
            prom,
            f'availmon_seconds_total{{service="{SERVICE}",channel="{channel}",'
            f'vantage="combined",verdict="unavailable"}}',
        )
        values = [counter[t] for t in stamps if t in counter]
        assert values == sorted(values), f"{channel}: counter reset during the test"
        seen = counter[t2] - counter[t1]
        own = sum(1 for r in rows if r[key] == "unavailable")
        assert seen == own, f"{channel}: Prometheus saw {seen}, the daemon recorded {own}"
    assert sum(1 for r in rows if r["verdict"] == "unavailable") >= OUTAGE_SECONDS


def test_the_burn_rate_page_goes_pending_or_firing(stack: Stack, outage: dict[str, float]) -> None:
    def fast_burn() -> list[Any]:
        answer = stack.prom.query(
            f'ALERTS{{alertname="AvailmonErrorBudgetBurnFast",service="{SERVICE}"}}'
        )
        result: list[Any] = answer["data"]["result"]
        return result

    (alert,) = wait_until(fast_burn, tries=60, every=0.5, what="AvailmonErrorBudgetBurnFast")
    assert alert["metric"]["alertstate"] in ("pending", "firing")
    assert alert["metric"]["severity"] == "page"
    assert alert["metric"]["channel"] == "service"


def test_the_critical_issue_shows_in_prometheus(stack: Stack, outage: dict[str, float]) -> None:
    """availmon opened a Critical Issue for the outage: the alert that inhibits the
    burn-rate pages in Alertmanager fires in Prometheus."""

    def critical() -> list[Any]:
        answer = stack.prom.query(
            f'ALERTS{{alertname="AvailmonCriticalIssueOpen",service="{SERVICE}",'
            f'alertstate="firing"}}'
        )
        result: list[Any] = answer["data"]["result"]
        return result

    wait_until(critical, tries=60, every=0.5, what="AvailmonCriticalIssueOpen firing")


def test_every_dashboard_query_parses_and_returns_data(
    stack: Stack, outage: dict[str, float]
) -> None:
    empty = []
    for where, expr in dashboard_queries(load_dashboard()):
        answer = stack.prom.query(fill_variables(expr, VALUES))
        assert answer.get("status") == "success", f"{where}: {answer.get('error')}"
        if not answer["data"]["result"] and not any(m in expr for m in NO_DATA_EXPECTED):
            empty.append(where)
    assert not empty, f"no data: {empty}"


@pytest.mark.parametrize(
    ("variable", "expected"),
    [("service", {SERVICE}), ("channel", {"api", "smtp"}), ("vantage", {VANTAGE})],
    ids=["service", "channel", "vantage"],
)
def test_dashboard_variables_list_the_monitored_values(
    stack: Stack, variable: str, expected: set[str]
) -> None:
    """The variable queries (Grafana's label_values(selector, label)) find the service
    and its channels, through Prometheus's label values API as Grafana asks."""
    (var,) = [v for v in load_dashboard()["templating"]["list"] if v["name"] == variable]
    selector, label = label_values(var["query"])
    query = urllib.parse.urlencode({"match[]": fill_variables(selector, VALUES)})
    answer = http_json(f"{stack.prom.url}/api/v1/label/{label}/values?{query}")
    assert answer["status"] == "success", answer
    assert set(answer["data"]) == expected


def test_every_rule_parses_and_every_record_has_data(
    stack: Stack, outage: dict[str, float]
) -> None:
    empty = []
    for rule in load_rules():
        answer = stack.prom.query(rule["expr"])
        name = rule.get("record") or rule.get("alert")
        assert answer.get("status") == "success", f"{name}: {answer.get('error')}"
        if "record" in rule and not stack.prom.query(rule["record"])["data"]["result"]:
            empty.append(rule["record"])
    assert not empty, f"recorded series without data: {empty}"
    rules = http_json(f"{stack.prom.url}/api/v1/rules")["data"]["groups"]
    health = {r["name"]: r["health"] for g in rules for r in g["rules"]}
    assert set(health.values()) == {"ok"}, {k: v for k, v in health.items() if v != "ok"}


def test_promtool_check_metrics_has_nothing_to_report(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.daemon_url}/metrics", timeout=10) as resp:
        exposition = resp.read()
    assert b"availmon_seconds_total" in exposition
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"" and result.stderr.strip() == b"", result
