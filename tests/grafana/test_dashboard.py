"""The Grafana dashboard and provisioning, checked structurally and against a real Prometheus."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana.promkit import (
    CONTRACT_SERIES,
    DATASOURCE_UID,
    GRAFANA,
    GRAFANA_BUILTINS,
    RULES,
    PrometheusProcess,
    all_panels,
    dashboard_queries,
    fill_variables,
    label_values,
    load_dashboard,
    metric_names,
    prometheus_config,
    recorded_names,
    variables,
)

VALUES = {"service": "mail", "slo_target": "99.99", "channel": "api", "vantage": "(east|west)"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def _variable_names(dashboard: dict[str, Any]) -> set[str]:
    return {v["name"] for v in dashboard["templating"]["list"]}


def test_dashboard_header(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "availmon"
    assert dashboard["schemaVersion"] >= 36  # Grafana 9+: datasource refs by uid
    assert dashboard["title"]


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(isinstance(i, int) and i > 0 for i in ids)


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for p in all_panels(dashboard):
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_every_panel_and_query_uses_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    for p in all_panels(dashboard):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, p["title"]
        assert p["targets"], f"{p['title']} has no query"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == DATASOURCE_UID, p["title"]
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            assert v["datasource"]["uid"] == DATASOURCE_UID, v["name"]


def test_provisioning_names_the_same_datasource_and_folder() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "availmon.yml").read_text())
    (source,) = ds["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://127.0.0.1:9090"
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "availmon.yml").read_text())
    (provider,) = dash["providers"]
    # Grafana expands environment variables in provisioning files; GF_PATHS_PROVISIONING
    # is how the README points Grafana at grafana/provisioning.
    path = os.path.expandvars(
        provider["options"]["path"].replace(
            "${GF_PATHS_PROVISIONING}", str(GRAFANA / "provisioning")
        )
    )
    assert Path(path).resolve() == (GRAFANA / "dashboards").resolve()
    assert (Path(path) / "availmon.json").is_file()


def test_every_variable_used_is_defined(dashboard: dict[str, Any]) -> None:
    defined = _variable_names(dashboard)
    assert {"service", "slo_target"} <= defined
    texts = [expr for _, expr in dashboard_queries(dashboard)]
    texts += [p.get("title", "") for p in all_panels(dashboard)]
    texts += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = set().union(*(variables(t) for t in texts))
    used |= {p["repeat"] for p in all_panels(dashboard) if p.get("repeat")}
    undefined = used - defined - set(GRAFANA_BUILTINS)
    assert not undefined, f"used but not defined: {sorted(undefined)}"
    assert {"service", "slo_target", "channel", "vantage"} <= used


def test_slo_target_defaults_to_the_email_sla(dashboard: dict[str, Any]) -> None:
    (slo,) = [v for v in dashboard["templating"]["list"] if v["name"] == "slo_target"]
    assert slo["type"] in ("custom", "constant")
    assert slo["current"]["value"] == "99.99"


def test_queries_name_only_design_metrics_and_recorded_rules(dashboard: dict[str, Any]) -> None:
    allowed = CONTRACT_SERIES | recorded_names()
    for where, expr in dashboard_queries(dashboard):
        names = metric_names(fill_variables(expr, VALUES))
        assert names - allowed == set(), f"{where}: {sorted(names - allowed)} in {expr}"
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            selector, _ = label_values(v["query"])
            assert metric_names(fill_variables(selector, VALUES)) <= allowed, v["name"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{x="y"}[5m]))', {"a_bucket"}),
        ("a:b:rate5m / (1 - c) > 14.4 * scalar(d)", {"a:b:rate5m", "c", "d"}),
        ('x{l="by (q)"} - x offset 1h30m', {"x"}),
        ("vector(99.99) and on() group_left(k) y", {"y"}),
        ("1e-3 * z", {"z"}),
    ],
    ids=["aggregation", "recording-names", "offset-and-string", "vector-grouping", "exponent"],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_dashboard_covers_the_issue(dashboard: dict[str, Any]) -> None:
    """Issue 5's panel list, as the metrics each panel must read."""
    used = set().union(*(metric_names(e) for _, e in dashboard_queries(dashboard)))
    needed = {
        "availmon:availability:ratio_rate5m",  # availability now
        "availmon:availability:ratio_rate30d",  # over 30 days
        "availmon_month_error_budget_seconds",  # budget left for the month
        "availmon_month_unavailable_seconds",
        "availmon_seconds_total",  # unavailable seconds per channel
        "availmon_attempts_total",  # attempts by outcome, probe errors
        "availmon_attempt_duration_seconds_bucket",  # latency percentiles, heatmap
        "availmon_incidents_open",  # open incidents by severity
        "availmon_last_final_second_timestamp_seconds",  # monitor health
        "availmon_launches_skipped_total",
        "availmon_notifications_total",
        "availmon_verdict",
        "availmon_leader",  # the vantage points row
        "availmon_combine_lag_seconds_bucket",
        "availmon_combine_late_total",
        "availmon_blocklist_listed",  # the blocklists row (issue 13)
        "availmon_blocklist_checks_total",
    }
    assert needed <= used, sorted(needed - used)
    queries = " ".join(e for _, e in dashboard_queries(dashboard))
    assert "$slo_target" in queries


# what each vantage measured itself, and what the leader judged on (monitor/metrics.py)
OWN = {
    "availmon_attempts_total",
    "availmon_attempt_duration_seconds_bucket",
    "availmon_launches_skipped_total",
}
LEADERS = {
    "availmon_seconds_total",
    "availmon_verdict",
    "availmon_month_error_budget_seconds",
    "availmon_month_unavailable_seconds",
    "availmon_incidents_open",
    "availmon_blocklist_listed",
    "availmon_blocklist_checks_total",
}


def test_the_sla_panels_read_the_combined_verdicts_and_the_rest_follow_the_vantage_selector(
    dashboard: dict[str, Any],
) -> None:
    """Every selector of a leader's series names vantage="combined" (the SLA's verdicts),
    or the selected vantages beside it; every selector of an instance's own series
    follows $vantage. A selector without vantage would add the vantages' verdicts up."""
    import re

    selector = re.compile(r"([a-z_:]+)\{([^}]*)\}")
    seen = set()
    for where, expr in dashboard_queries(dashboard):
        for name, matchers in selector.findall(expr):
            if name in LEADERS:
                assert re.search(r'vantage(="combined"|=~"\$vantage\|combined")', matchers), (
                    f"{where}: {name}{{{matchers}}}"
                )
                seen.add(name)
            if name in OWN:
                assert 'vantage=~"$vantage"' in matchers, f"{where}: {name}{{{matchers}}}"
                seen.add(name)
    assert seen == LEADERS | OWN
    (vantage,) = [v for v in dashboard["templating"]["list"] if v["name"] == "vantage"]
    assert vantage["multi"] and vantage["includeAll"]
    # the per-vantage strip shows every vantage beside the combined verdict
    strips = [
        p for p in all_panels(dashboard)
        if p["type"] == "state-timeline" and "by (vantage)" in p["targets"][0]["expr"]
        and "availmon_verdict" in p["targets"][0]["expr"]
    ]  # fmt: skip
    assert strips and strips[0]["targets"][0]["legendFormat"] == "{{vantage}}"


@pytest.mark.external
def test_every_dashboard_query_parses_in_prometheus(
    tmp_path: Path, dashboard: dict[str, Any]
) -> None:
    """Every panel query, with Grafana's variables filled in, is accepted by a real
    Prometheus that has the shipped rules loaded (no data needed to parse)."""
    config = prometheus_config("127.0.0.1:1", RULES)
    prom = PrometheusProcess(tmp_path, config)
    try:
        for where, expr in dashboard_queries(dashboard):
            answer = prom.query(fill_variables(expr, VALUES))
            assert answer.get("status") == "success", f"{where}: {answer.get('error')}"
        for v in dashboard["templating"]["list"]:
            if v["type"] == "query":
                selector = fill_variables(label_values(v["query"])[0], VALUES)
                assert prom.query(selector)["status"] == "success", v["name"]
        bad = prom.query("sum(rate(availmon_seconds_total[5m]")
        assert bad["status"] == "error"  # the check itself can fail
    finally:
        prom.stop()
