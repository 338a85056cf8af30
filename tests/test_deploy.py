"""deploy/availmon.service: a unit systemd accepts, hardened, running a command that exists."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "availmon.service"


def _directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.external
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify wants ExecStart's binary to exist: point it at this interpreter
    text = UNIT.read_text().replace("/opt/availmon/bin/availmon", sys.executable)
    copy = tmp_path / "availmon.service"
    copy.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "availmon.service" not in done.stderr, done.stderr  # no warning about the unit


def test_the_unit_is_hardened_and_runs_a_real_command() -> None:
    d = _directives()
    for key, value in {
        "DynamicUser": "yes",
        "StateDirectory": "availmon",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert d.get(key) == [value], key
    assert int(d["LimitNOFILE"][0]) >= 65536
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # the daemon reloads on SIGHUP
    # the command line parses as availmon's own
    argv = d["ExecStart"][0].split()
    assert argv[0].endswith("/availmon")
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.config, args.log_format) == (
        "run",
        "/etc/availmon/config.toml",
        "json",
    )
    # the store and reports land in the state directory, whatever the config says
    env = dict(e.split("=", 1) for e in d["Environment"])
    assert env["AVAILMON_STORE__URL"] == "sqlite:////var/lib/availmon/availmon.db"
    assert env["AVAILMON_REPORT__DIR"].startswith("/var/lib/availmon/")
