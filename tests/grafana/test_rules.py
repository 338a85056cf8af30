"""Prometheus rules and Alertmanager config: promtool/amtool checks, unit tests, inhibition."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana.promkit import (
    ALERTMANAGER,
    AMTOOL,
    CONTRACT_SERIES,
    GRAFANA,
    PROMTOOL,
    RULES,
    free_port,
    http_json,
    load_rules,
    metric_names,
    recorded_names,
    wait_until,
)

PROM_DIR = GRAFANA / "prometheus"
UNIT_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
ALERTMANAGER_YML = PROM_DIR / "alertmanager.yml"
BURN_ALERTS = {
    # alert: (burn factor, long window, short window, severity) from the SRE workbook
    "AvailmonErrorBudgetBurnFast": (14.4, "1h", "5m", "page"),
    "AvailmonErrorBudgetBurnMedium": (6.0, "6h", "30m", "page"),
    "AvailmonErrorBudgetBurnSlow": (1.0, "3d", "6h", "ticket"),
}


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=PROM_DIR
    )


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in load_rules() if "alert" in r}


@pytest.mark.parametrize("path", RULES, ids=[p.name for p in RULES])
def test_promtool_check_rules(path: Path) -> None:
    result = _run(PROMTOOL, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules_rejects_a_broken_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "groups:\n  - name: x\n    rules:\n      - record: a:b\n        expr: rate(x[5m]\n"
    )
    result = _run(PROMTOOL, "check", "rules", bad)
    assert result.returncode != 0


def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no promtool unit tests found"
    result = _run(PROMTOOL, "test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The same blip scenario at a 99.999 % target must page: the checks are not vacuous."""
    strict = tmp_path / "recording.yml"
    text = (PROM_DIR / "rules" / "recording.yml").read_text()
    assert "vector(0.9999)" in text
    strict.write_text(text.replace("vector(0.9999)", "vector(0.99999)"))
    (tmp_path / "alerts.yml").write_text((PROM_DIR / "rules" / "alerts.yml").read_text())
    tests = yaml.safe_load((PROM_DIR / "tests" / "burn_rate.yml").read_text())
    tests["rule_files"] = [str(strict), str(tmp_path / "alerts.yml")]
    tests["tests"] = [t for t in tests["tests"] if t["name"] == "a 1-second blip pages nobody"]
    assert tests["tests"]
    (tmp_path / "t.yml").write_text(yaml.safe_dump(tests))
    result = _run(PROMTOOL, "test", "rules", tmp_path / "t.yml")
    assert result.returncode != 0
    assert "AvailmonErrorBudgetBurnFast" in result.stdout + result.stderr


def test_every_alert_has_unit_tests_that_fire_and_stay_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts - fires == set(), f"never shown firing: {sorted(alerts - fires)}"
    assert alerts - quiet == set(), f"never shown quiet: {sorted(alerts - quiet)}"


def test_rules_name_only_design_metrics_and_their_own_records() -> None:
    allowed = CONTRACT_SERIES | recorded_names() | {"up"}
    for rule in load_rules():
        names = metric_names(rule["expr"])
        where = rule.get("record") or rule.get("alert")
        assert names <= allowed, f"{where}: {sorted(names - allowed)}"


def test_the_slo_target_is_the_email_sla_and_defined_once() -> None:
    records = {r["record"]: r["expr"] for r in load_rules() if "record" in r}
    assert records["availmon:slo_target:ratio"].strip() == "vector(0.9999)"
    assert records["availmon:error_budget:ratio"].strip() == "1 - availmon:slo_target:ratio"
    literals = [r for r in load_rules() if "0.9999" in r["expr"] or "0.0001" in r["expr"]]
    assert len(literals) == 1, "the target must be written in one place"


@pytest.mark.parametrize("alert", sorted(BURN_ALERTS), ids=sorted(BURN_ALERTS))
def test_burn_rate_alerts_are_multiwindow_and_scaled_to_the_target(alert: str) -> None:
    factor, long_w, short_w, severity = BURN_ALERTS[alert]
    rule = _alerts()[alert]
    expr = " ".join(rule["expr"].split())
    assert rule["labels"]["severity"] == severity
    threshold = rf"> {factor:g} \* scalar\(availmon:error_budget:ratio\)"
    for window in (long_w, short_w):
        ratio = rf'availmon:error_ratio:rate{window}\{{channel="service"\}}'
        assert re.search(f"{ratio} {threshold}", expr), (window, expr)
    assert " and " in expr


def test_recorded_windows_cover_the_issue() -> None:
    for window in ("5m", "30m", "1h", "6h", "1d", "3d", "30d"):
        assert f"availmon:error_ratio:rate{window}" in recorded_names()
        assert f"availmon:availability:ratio_rate{window}" in recorded_names()
    assert "availmon:month_error_budget_remaining:seconds" in recorded_names()


def test_example_prometheus_config_is_valid() -> None:
    result = _run(PROMTOOL, "check", "config", PROM_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "1s"
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "availmon"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9310"]
    assert "--storage.tsdb.retention.time=40d" in (PROM_DIR / "prometheus.yml").read_text()


def test_amtool_check_config() -> None:
    result = _run(AMTOOL, "check-config", ALERTMANAGER_YML)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=AvailmonErrorBudgetBurnFast", "severity=page", "service=mail"], "pager"),
        (["alertname=AvailmonCriticalIssueOpen", "severity=info", "service=mail"], "chat"),
        (["alertname=AvailmonErrorBudgetBurnSlow", "severity=ticket", "service=mail"], "ticket"),
        # what availmon's alertmanager notifier posts (alerting/notifiers/alertmanager.py)
        (
            [
                "alertname=AvailmonCriticalIssue",
                "severity=critical",
                "service=mail",
                "incident_id=7",
            ],
            "pager",
        ),
        (
            ["alertname=AvailmonNonCriticalIssue", "severity=non_critical", "service=mail"],
            "ticket",
        ),
    ],
    ids=[
        "burn-pages",
        "critical-issue-to-chat",
        "slow-burn-tickets",
        "availmon-critical-pages",
        "availmon-non-critical-tickets",
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    result = _run(AMTOOL, "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


@pytest.fixture
def alertmanager(tmp_path: Path) -> Any:
    port = free_port()
    log = (tmp_path / "am.log").open("wb")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={ALERTMANAGER_YML}",
            f"--storage.path={tmp_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: http_json(f"{url}/api/v2/status").get("cluster"),
            tries=300,
            every=0.1,
            what="Alertmanager /api/v2/status",
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.mark.external
def test_a_critical_issue_inhibits_the_burn_rate_pages_of_its_service(alertmanager: str) -> None:
    """One outage pages once: while availmon's own Critical Issue is open, Alertmanager
    suppresses the burn-rate pages of that service, and only of that service."""
    now = datetime.now(UTC)
    starts, ends = now.isoformat(), (now + timedelta(hours=1)).isoformat()

    def alert(name: str, service: str, severity: str) -> dict[str, Any]:
        return {
            "labels": {"alertname": name, "service": service, "severity": severity},
            "annotations": {"summary": f"{name} {service}"},
            "startsAt": starts,
            "endsAt": ends,
        }

    posted = [
        alert("AvailmonCriticalIssueOpen", "mail", "info"),
        alert("AvailmonErrorBudgetBurnFast", "mail", "page"),
        alert("AvailmonErrorBudgetBurnMedium", "mail", "page"),
        alert("AvailmonErrorBudgetBurnFast", "other", "page"),
    ]
    req = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps(posted).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200

    def states() -> dict[tuple[str, str], str] | None:
        got = {
            (a["labels"]["alertname"], a["labels"]["service"]): a["status"]["state"]
            for a in http_json(f"{alertmanager}/api/v2/alerts")
        }
        # the inhibitor sees the source alert asynchronously: wait for its verdict
        if len(got) == 4 and got[("AvailmonErrorBudgetBurnFast", "mail")] == "suppressed":
            return got
        return None

    got = wait_until(states, tries=100, every=0.1, what="the inhibition to apply")
    assert got == {
        ("AvailmonCriticalIssueOpen", "mail"): "active",
        ("AvailmonErrorBudgetBurnFast", "mail"): "suppressed",
        ("AvailmonErrorBudgetBurnMedium", "mail"): "suppressed",
        ("AvailmonErrorBudgetBurnFast", "other"): "active",
    }
