"""`availmon demo`: the daemon's measured unavailable seconds equal the simulator's truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
