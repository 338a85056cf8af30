"""An attempt leaves no reference cycles behind, whatever the target did.

Everything an attempt allocates must be freed by reference counting as it ends: cyclic
garbage is freed only by collector passes, and passes over many attempts in flight are
what made launches late (monitor/gcpacer.py). The probes run in a child process
(tests/probes/cycles_child.py), so that the servers here add no garbage of their own; it
counts what only the collector could free, with the collector's DEBUG_SAVEALL.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator import Simulator
from tests.probes.test_probe_http import web_server

ROOT = Path(__file__).resolve().parents[2]
ATTEMPTS = 4


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(tls=True) as s:
        yield s


async def _garbage(probes: list[dict[str, Any]], deadline: float = 0.5) -> dict[str, Any]:
    spec = {"attempts": ATTEMPTS, "timeout": deadline, "probes": probes}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.probes.cycles_child",
        json.dumps(spec),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await child.communicate()
    assert child.returncode == 0, err.decode()[-2000:]
    return dict(json.loads(out))


def _simulator_probes(sim: Simulator) -> list[dict[str, Any]]:
    smtp = {"type": "smtp", "host": "127.0.0.1", "port": sim.smtp_port, "ehlo_name": "probe.test"}
    return [
        {"type": "http", "name": "api", "url": f"{sim.http_url}/api/v1/account"},
        {
            "type": "http",
            "name": "api-reused",
            "url": f"{sim.http_url}/api/v1/account",
            "reuse_connections": True,
        },
        {**smtp, "name": "smtp", "tls": "none"},
        {**smtp, "name": "smtp-starttls", "tls": "starttls", "ca_file": str(sim.ca_file)},
    ]


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [("ok", "ok"), ("5xx", "server_error"), ("hang", "timeout"), ("reset", "server_error")],
)
async def test_attempts_leave_no_cyclic_garbage(sim: Simulator, fault: str, outcome: str) -> None:
    sim.set_fault("api", fault)
    sim.set_fault("smtp", "smtp_451" if fault == "5xx" else fault)
    result = await _garbage(_simulator_probes(sim))
    for name, r in result.items():
        assert r["outcome"] == outcome, f"{name}: {r['outcome']}"
    left = {name: r["types"] for name, r in result.items() if r["garbage"]}
    assert left == {}, f"cyclic garbage after {ATTEMPTS} attempts against {fault}: {left}"


async def test_refused_connections_leave_no_cyclic_garbage(unused_tcp_port: int) -> None:
    port = unused_tcp_port
    result = await _garbage(
        [
            {"type": "http", "name": "api", "url": f"http://127.0.0.1:{port}/"},
            {
                "type": "http",
                "name": "api-reused",
                "url": f"http://127.0.0.1:{port}/",
                "reuse_connections": True,
            },
            {"type": "smtp", "name": "smtp", "host": "127.0.0.1", "port": port, "tls": "none"},
        ]
    )
    assert {name: r["outcome"] for name, r in result.items()} == dict.fromkeys(
        result, "server_error"
    )
    assert {name: r["garbage"] for name, r in result.items()} == dict.fromkeys(result, 0)


async def test_https_attempts_leave_no_cyclic_garbage(
    server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    async with web_server(server_tls) as base:
        result = await _garbage(
            [
                {
                    "type": "http",
                    "name": "https",
                    "url": f"{base}/status/200",
                    "ca_file": str(ca_file),
                },
                {
                    "type": "http",
                    "name": "https-5xx",
                    "url": f"{base}/status/503",
                    "ca_file": str(ca_file),
                },
            ],
            deadline=5.0,
        )
    assert result["https"]["outcome"] == "ok"
    assert result["https-5xx"]["outcome"] == "server_error"
    assert {name: r["types"] for name, r in result.items() if r["garbage"]} == {}
