"""Log output: incident transitions are logged with no notifier configured, and
`--log-format json` writes one JSON object a line with the usual fields."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from alerting.incidents import Incidents
from monitor.config import parse
from monitor.logs import JsonFormatter
from tests.alerting.test_policy import Rig


def test_json_lines_carry_the_usual_fields_and_the_context() -> None:
    record = logging.LogRecord(
        "availmon.incidents", logging.INFO, __file__, 1, "x %s", ("é",), None
    )
    record.service, record.incident = "sp", 7
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "INFO" and line["logger"] == "availmon.incidents"
    assert line["message"] == "x é" and (line["service"], line["incident"]) == ("sp", 7)
    assert line["time"].endswith("+00:00") and "T" in line["time"]
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    out = JsonFormatter().format(failed)
    assert "\n" not in out  # one line, the traceback inside the string
    assert "ValueError: boom" in json.loads(out)["exc"]


def test_every_incident_transition_is_logged_without_any_notifier(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = parse(
        {
            "monitor": {"vantage": "test"},
            "services": [
                {
                    "name": "sp",
                    "critical": {"recover_after_seconds": 5},
                    "probes": [{"type": "http", "name": "api", "url": "http://127.0.0.1:9/"}],
                }
            ],
        }
    )
    caplog.set_level(logging.INFO, logger="availmon.incidents")
    rig = Rig(tmp_path, settings)
    rig.feed("A" * 5 + "U" * 30)
    [inc] = rig.incidents()
    people = Incidents(settings, rig.store, rig.clock)
    people.ack(inc.id, "alice")
    rig.feed("A" * 6)
    people.resolve(inc.id, "bob", "provider fixed a load balancer")
    lines = [r for r in caplog.records if r.name == "availmon.incidents"]
    messages = [r.getMessage() for r in lines]
    assert [m.split(") ", 1)[1].split(":")[0] for m in messages] == [
        "opened",
        "acknowledged",
        "recovered",
        "resolved",
    ], messages
    assert all(m.startswith(f"Critical Issue #{inc.id} (sp) ") for m in messages)
    assert "by alice" in messages[1] and "provider fixed a load balancer" in messages[3]
    assert all((r.service, r.incident) == ("sp", inc.id) for r in lines)  # type: ignore[attr-defined]


def test_run_with_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.loopback import minimal_config

    cfg = minimal_config(tmp_path / "c.toml", f"sqlite:///{tmp_path / 'a.db'}")
    err = tmp_path / "stderr"
    with err.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(cfg), "--log-format", "json"],
            stderr=out,
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):  # bounded wait for the start line
                if b"availmon started" in err.read_bytes():
                    break
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    lines = [json.loads(line) for line in err.read_text().splitlines()]
    messages = [x["message"] for x in lines]
    assert any(m.startswith("availmon started") for m in messages), messages
    assert any(m.startswith("availmon stopped: last final second") for m in messages), messages
    assert all({"time", "level", "logger", "message"} <= x.keys() for x in lines)
