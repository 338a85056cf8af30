"""`availmon demo`: the daemon's measured unavailable seconds equal the simulator's truth."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from monitor.demo import SIMULATOR_PORTS, port_free
from tests.loopback import run_cli

pytestmark = pytest.mark.slow


def test_demo_summary_equals_ground_truth(tmp_path: Path) -> None:
    # 40 s covers the built-in scenario's API 5xx outage, SMTP hang outage and the partial
    # failure that must not count.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "demo",
            "--duration",
            "40",
            "--json",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["injected"] == summary["measured"]
    assert summary["injected"]["api"] > 0 and summary["injected"]["smtp"] > 0
    assert summary["injected"]["service"] >= max(
        summary["injected"]["api"], summary["injected"]["smtp"]
    )
    assert Path(summary["config"]).is_file() and summary["workdir"] == str(tmp_path)
    ci = summary["critical_issue"]
    assert ci["opened"] is True
    assert ci["opened_at"] >= ci["outage_start"]
    assert ci["notified_at"] is not None and ci["notified_at"] >= ci["opened_at"]
    # the secret is in a file beside the config, never in the config itself
    assert "demo-api-key" not in Path(summary["config"]).read_text()


def _availmon(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AVAILMON_CONFIG"}
    return run_cli(*args, cwd=cwd, env=env)


def test_run_without_a_config_is_found_by_the_other_commands(tmp_path: Path) -> None:
    """`availmon run` with no config: the simulator on its documented ports when free, and
    `check-config` / `incidents list` in the same folder find the config it wrote."""
    if not all(port_free(p) for p in (*SIMULATOR_PORTS, 9310)):
        pytest.skip("a documented port is in use on this machine")
    env = {k: v for k, v in os.environ.items() if k != "AVAILMON_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        config = tmp_path / "availmon-data" / "config.toml"
        for _ in range(300):  # a bound on the wait, not a timed assertion
            if config.is_file() and not port_free(9310):
                break
            time.sleep(0.1)
        text = config.read_text()
        assert f":{SIMULATOR_PORTS[0]}/api/v1/account" in text
        assert f"port = {SIMULATOR_PORTS[1]}" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{SIMULATOR_PORTS[0]}/_sim/state") as r:
            assert r.status == 200
        checked = _availmon(tmp_path, "check-config")
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.startswith("availmon-data/config.toml: ok")
        listed = _availmon(tmp_path, "incidents", "list")
        assert listed.returncode == 0, listed.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    # elsewhere, with neither -c, AVAILMON_CONFIG nor that file: one line, exit 2
    other = tmp_path / "elsewhere"
    other.mkdir()
    done = _availmon(other, "incidents", "list")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "AVAILMON_CONFIG" in done.stderr


def test_port_free_sees_a_bound_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not port_free(s.getsockname()[1])


def test_the_live_view_piped_prints_one_line_per_second() -> None:
    import io

    from monitor.demo import LiveView
    from monitor.verdicts import SecondVerdict, Verdict

    out = io.StringIO()  # not a terminal: nothing is redrawn
    view = LiveView(out)
    for second, verdict in (
        (1_800_000_000, Verdict.AVAILABLE),
        (1_800_000_001, Verdict.UNAVAILABLE),
    ):
        view(
            second,
            [SecondVerdict("simulated", ch, second, verdict, "demo") for ch in ("api", "service")],
        )
    lines = out.getvalue().splitlines()
    assert lines == ["08:00:00Z  api .  service .", "08:00:01Z  api X  service X"]
    assert "\x1b[" not in out.getvalue()
