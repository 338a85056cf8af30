"""Attempts leave no reference cycles behind.

What an attempt allocates should be freed by reference counting as it ends: cyclic garbage
is freed only by collector passes, and the pacer defers older passes while many attempts
are in flight (monitor/gcpacer.py) — that is, while a target hangs. So: no cycles from any
probe for ok, 5xx and hang. A reset or a refused connection fails at once (few attempts
in flight, older passes run): there the HTTP probe's own fresh-connection path is still
cycle-free, while aiohttp's session and aiosmtplib may keep cycles through frames of their
coroutines, which `forget_frames` must not clear (one still suspended would be closed).

The probes run in a child process (tests/probes/cycles_child.py), so that the servers here
add no garbage of their own; it counts what only the collector could free, with the
collector's DEBUG_SAVEALL.
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
from probes.base import forget_frames
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


ALL = ("api", "api-reused", "smtp", "smtp-starttls")


@pytest.mark.parametrize(
    ("fault", "outcome", "clean"),
    [
        ("ok", "ok", ALL),
        ("5xx", "server_error", ALL),
        ("hang", "timeout", ALL),
        ("reset", "server_error", ("api",)),
    ],
)
async def test_attempts_leave_no_cyclic_garbage(
    sim: Simulator, fault: str, outcome: str, clean: tuple[str, ...]
) -> None:
    sim.set_fault("api", fault)
    sim.set_fault("smtp", "smtp_451" if fault == "5xx" else fault)
    result = await _garbage(_simulator_probes(sim))
    for name, r in result.items():
        assert r["outcome"] == outcome, f"{name}: {r['outcome']}"
    left = {name: r["types"] for name, r in result.items() if r["garbage"] and name in clean}
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
    assert result["api"]["garbage"] == 0, result["api"]["types"]


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


async def test_forget_frames_never_closes_a_coroutine_that_kept_the_error() -> None:
    kept: list[BaseException] = []
    go_on = asyncio.Event()

    async def keeper() -> str:
        try:
            raise ValueError("caught, kept, and then the coroutine goes on")
        except ValueError as exc:
            kept.append(exc)
        await go_on.wait()
        return "finished"

    task = asyncio.create_task(keeper())
    await asyncio.sleep(0)
    assert kept  # the keeper is suspended, its frame in the error's traceback
    forget_frames(kept[0])
    go_on.set()
    async with asyncio.timeout(5):  # a closed coroutine would never finish its task
        assert await task == "finished"


def test_forget_frames_clears_the_locals_of_finished_frames() -> None:
    def fails() -> None:
        payload = bytearray(10)  # noqa: F841 (held by the frame, as a future would be)
        raise OSError("reset")

    try:
        fails()
    except OSError as exc:
        frame = exc.__traceback__.tb_next.tb_frame  # type: ignore[union-attr]
        assert "payload" in frame.f_locals
        forget_frames(exc)
        assert frame.f_locals == {}
