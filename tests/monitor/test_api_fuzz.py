"""schemathesis against the running daemon: generated requests from the OpenAPI
description (/api/v1/openapi.json), a bounded number per operation. No 5xx, ever; every
answer has a status, content type, headers and body the description allows; a request the
description forbids is refused with a 4xx."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import DEMO_API_KEY, simulated_config
from monitor.simulator import Simulator

pytestmark = pytest.mark.slow

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    )
)


async def test_schemathesis_finds_no_server_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a test dependency (pyproject.toml)"
    monkeypatch.setenv("AVAILMON_T", "tok")
    sim = Simulator(tls=True, api_key=DEMO_API_KEY, smtp_password=DEMO_API_KEY)
    await sim.start()
    path = simulated_config(sim, tmp_path)
    text = path.read_text().replace(
        'vantage = "demo"', 'vantage = "demo"\napi_token = "env:AVAILMON_T"'
    )
    path.write_text(text)
    d = Daemon(load(path))
    await d.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            st, "run", f"http://127.0.0.1:{d.http_port}/api/v1/openapi.json",
            "--max-examples", "25", "--seed", "20261202", "-c", CHECKS,
            "-H", "Authorization: Bearer tok", "--no-color",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
    finally:
        await d.stop()
        await sim.stop()
    report: Any = out.decode(errors="replace")
    assert proc.returncode == 0, report[-4000:]
    # every operation of the description was selected and exercised
    selected = re.search(r"Selected:\W*(\d+)/(\d+)", report)
    tested = re.search(r"Tested:\W*(\d+)", report)
    assert selected is not None and tested is not None, report[-2000:]
    assert selected.group(1) == selected.group(2) == tested.group(1), report[-2000:]
    assert int(tested.group(1)) >= 14
