"""The soak's short form: bench/soak.py for one 60 s cycle of faults (API 503s, an SMTP
hang, TCP resets, partial failure, SQLite's write lock held by another process for 9 s)
against a real `availmon run`. ``AVAILMON_SOAK_CYCLES=30`` makes it the long one.

Every second stored matches the simulator's ground truth, none twice, none missing; each
outage meeting the rule is one Critical Issue and one page; the daemon keeps no file or
thread it opened for a fault (against what it held, warm, before the first fault); it logs
no traceback and stops cleanly. `--shared-host` relaxes the launch-lag and stall
thresholds: a loaded CI machine's hiccups are not what this test is about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[2]


def test_one_soak_cycle_matches_ground_truth_and_leaks_nothing(tmp_path: Path) -> None:
    cycles = int(os.environ.get("AVAILMON_SOAK_CYCLES", "1"))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--cycles",
            str(cycles),
            "--workdir",
            str(tmp_path),
            "--json",
            "--shared-host",
        ],
        capture_output=True,
        text=True,
        timeout=120 + 70 * cycles,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout.splitlines()[-1])
    log = (tmp_path / "daemon.log").read_text()[-3000:]
    assert r["exit_code"] == 0, log
    for channel, c in r["channels"].items():
        assert c["injected"] > 0, channel  # the cycle did break every channel
        assert (c["missed"], c["extra"], c["missing_seconds"], c["stored_twice"]) == (
            0,
            0,
            0,
            0,
        ), (channel, c, log)
    assert r["critical_opened"] == r["critical_expected"] == 2 * cycles, log
    assert r["pages"] == r["critical_opened"] and r["pages_duplicated"] == 0
    assert r["skipped_launches"] == 0
    assert r["store_errors"] >= 1  # the lock was felt, and the daemon went on
    assert r["log_tracebacks"] == 0, log
    # what a fault opened, it closed: sockets and threads back to where they were
    assert r["fds"]["last"] <= r["fds"]["baseline"] + 2, r["fds"]
    assert r["threads"]["last"] <= r["threads"]["baseline"] + 1, r["threads"]
