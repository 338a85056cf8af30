"""`availmon export openslo|sloth`: the SLO as OpenSLO v1 and Sloth prometheus/v1 YAML,
checked against the projects' published examples and spec (tests/testdata/slo/README.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.config import load
from monitor.export import openslo_documents, sloth_specs, to_yaml

DATA = Path(__file__).resolve().parent.parent / "testdata" / "slo"

PROBE = '[[services.probes]]\ntype = "http"\nname = "api"\nurl = "http://127.0.0.1:9/"\n'


def config(path: Path, *names: str, extra: str = "") -> Path:
    """A config of these services (a name with `=` carries its slo_target_percent)."""
    text = '[store]\nurl = "sqlite:///x.db"\n' + extra
    for n in names:
        name, _, target = n.partition("=")
        text += f'[[services]]\nname = "{name}"\n'
        text += f"slo_target_percent = {target}\n" if target else ""
        text += PROBE
    path.write_text(text)
    return path


#: sloth pkg/prometheus/api/v1/v1.go (Spec, SLO, SLI, SLIEvents, Alerting, Alert): the
#: JSON field names each level accepts
SLOTH_FIELDS: dict[str, set[str]] = {
    "": {"version", "service", "labels", "slo_plugins", "slos"},
    "slos": {"name", "description", "objective", "plugins", "labels", "sli", "alerting"},
    "slos.sli": {"raw", "events", "plugin"},
    "slos.sli.events": {"error_query", "total_query"},
    "slos.alerting": {"name", "labels", "annotations", "page_alert", "ticket_alert"},
    "slos.alerting.page_alert": {"disable", "labels", "annotations"},
    "slos.alerting.ticket_alert": {"disable", "labels", "annotations"},
}
#: sloth pkg/common/conventions/conventions.go
SLOTH_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$")
SLOTH_WINDOW = re.compile(r"{{ *\.window *}}")
#: sloth internal/storage/io/sloth.go: how Sloth tells a prometheus/v1 file
SLOTH_DETECT = re.compile(r"(?m)^version: +['\"]?prometheus/v1['\"]?\r?\n? *$")
RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DURATION = re.compile(r"^\d+[smhdwMQY]$")


def paths(v: Any, prefix: str = "") -> set[str]:
    """Every mapping key's dotted path (list items share their list's path)."""
    out: set[str] = set()
    if isinstance(v, dict):
        for k, x in v.items():
            p = f"{prefix}.{k}" if prefix else k
            out |= {p} | paths(x, p)
    elif isinstance(v, list):
        for x in v:
            out |= paths(x, prefix)
    return out


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    tz = '[report]\ntimezone = "America/New_York"\n'
    return load(config(tmp_path / "c.toml", "mx", "Mail_US.east=99.95", extra=tz))


def test_openslo_matches_the_published_example_and_spec(settings: Any) -> None:
    docs = yaml.safe_load_all(to_yaml(openslo_documents(settings)))
    docs = list(docs)
    assert docs == openslo_documents(settings)  # the emitter writes what YAML reads back
    example = yaml.safe_load((DATA / "openslo-timeslices-slo.yaml").read_text())
    # README "SLI": ratioMetric.counter, true for a monotonic counter (not in the example)
    allowed = paths(example) | {"spec.indicator.spec.ratioMetric.counter"}
    assert [d["spec"]["service"] for d in docs] == ["mx", "mail-us-east"]
    for d in docs:
        assert paths(d) <= allowed, paths(d) - allowed
        assert (d["apiVersion"], d["kind"]) == ("openslo/v1", "SLO")
        spec = d["spec"]
        assert RFC1123.fullmatch(d["metadata"]["name"]) and RFC1123.fullmatch(spec["service"])
        assert RFC1123.fullmatch(spec["indicator"]["metadata"]["name"])
        assert len(spec["description"]) <= 1050
        assert spec["budgetingMethod"] == "Timeslices"
        (window,) = spec["timeWindow"]  # exactly one item
        assert window["isRolling"] is False and DURATION.fullmatch(window["duration"])
        assert window["duration"] == "1M"
        assert re.fullmatch(r"\d{4}-\d\d-01 00:00:00", window["calendar"]["startTime"])
        assert window["calendar"]["timeZone"] == "America/New_York"
        (objective,) = spec["objectives"]
        assert 0 <= objective["target"] < 1 and 0 < objective["timeSliceTarget"] <= 1
        assert objective["timeSliceWindow"] == "1s"
        ratio = spec["indicator"]["spec"]["ratioMetric"]
        assert ratio["counter"] is True and set(ratio) == {"counter", "good", "total"}
        for side in ("good", "total"):
            q = ratio[side]["metricSource"]["spec"]["query"]
            assert ratio[side]["metricSource"]["type"] == "Prometheus"
            assert 'channel="service"' in q and 'vantage="combined"' in q
        assert 'verdict=~"available|unknown"' in ratio["good"]["metricSource"]["spec"]["query"]
        assert 'verdict!="excluded"' in ratio["total"]["metricSource"]["spec"]["query"]
    assert [d["spec"]["objectives"][0]["target"] for d in docs] == [0.9999, 0.9995]
    assert docs[1]["metadata"]["name"] == "mail-us-east-availability"
    for d, name in zip(docs, ["mx", "Mail_US.east"], strict=True):  # the query keeps it
        ratio = d["spec"]["indicator"]["spec"]["ratioMetric"]
        for side in ("good", "total"):
            assert f'service="{name}"' in ratio[side]["metricSource"]["spec"]["query"]


def test_sloth_matches_the_published_example_and_struct(settings: Any) -> None:
    text = to_yaml(sloth_specs(settings))
    specs = list(yaml.safe_load_all(text))
    assert specs == sloth_specs(settings)
    for part in text.split("---\n"):
        assert SLOTH_DETECT.search(part)  # Sloth reads each document as prometheus/v1
    example = yaml.safe_load((DATA / "sloth-getting-started.yml").read_text())
    assert example["version"] == "prometheus/v1"
    for spec in [example, *specs]:
        for p in paths(spec):
            parent, _, key = p.rpartition(".")
            if parent in SLOTH_FIELDS or parent.endswith(("labels", "annotations")):
                assert parent.endswith(("labels", "annotations")) or key in SLOTH_FIELDS[parent]
            else:
                pytest.fail(f"unexpected Sloth field {p}")
    assert [s["service"] for s in specs] == ["mx", "Mail_US.east"]
    assert [s["slos"][0]["objective"] for s in specs] == [99.99, 99.95]
    for spec in specs:
        assert set(spec) >= {"version", "service", "slos"}
        assert SLOTH_NAME.fullmatch(spec["service"])
        (slo,) = spec["slos"]
        assert SLOTH_NAME.fullmatch(slo["name"]) and slo["alerting"]["name"]
        assert 0 < slo["objective"] <= 100
        ev = slo["sli"]["events"]
        assert SLOTH_WINDOW.search(ev["error_query"]) and SLOTH_WINDOW.search(ev["total_query"])
        assert 'verdict="unavailable"' in ev["error_query"]
        assert 'verdict!="excluded"' in ev["total_query"]
        for q in ev.values():
            assert f'service="{spec["service"]}"' in q and 'vantage="combined"' in q


def test_the_yaml_emitter_quotes_what_must_be_quoted() -> None:
    doc = {"a": 'x: "y" #z\n', "b": [], "c": {}, "d": [{"e": 1, "f": [True, None]}], "é": 1.5}
    assert yaml.safe_load(to_yaml([doc])) == doc


def test_cli_writes_stdout_or_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: Any
) -> None:
    cfg = str(tmp_path / "c.toml")
    assert main(["export", "openslo", "-c", cfg, "--service", "mx"]) == 0
    (doc,) = yaml.safe_load_all(capsys.readouterr().out)
    assert doc["spec"]["service"] == "mx"
    out = tmp_path / "sloth.yml"
    assert main(["export", "sloth", "-c", cfg, "-o", str(out)]) == 0
    assert len(list(yaml.safe_load_all(out.read_text()))) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--service", "nope"], "availmon: error: --service: unknown service 'nope'\n"),
        (["-o", "/nonexistent/x.yml"], "availmon: error: -o: cannot write /nonexistent/x.yml"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: Any, argv: list[str], message: str
) -> None:
    assert main(["export", "sloth", "-c", str(tmp_path / "c.toml"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_a_name_no_tool_takes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path / "c.toml", "a_", "a-")
    for fmt in ("openslo", "sloth"):
        assert main(["export", fmt, "-c", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("availmon: error: service 'a_'") and err.count("\n") == 1


def test_two_services_of_one_openslo_name_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "openslo", "-c", str(config(tmp_path / "c.toml", "a.b", "a_b"))]) == 2
    assert capsys.readouterr().err == (
        "availmon: error: services 'a.b' and 'a_b' have the same OpenSLO name 'a-b'\n"
    )
