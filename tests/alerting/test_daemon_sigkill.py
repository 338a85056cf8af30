"""A real `availmon run` killed (SIGKILL) between writing a page and delivering it.

The pager is unreachable while the first daemon runs, so the Critical Issue's trigger sits
in the durable outbox; the daemon is killed; the pager comes up; a second daemon on the
same store delivers the page exactly once, and the incident continues (no second page).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.demo import DEMO_API_KEY, simulated_config
from monitor.simulator import Simulator
from monitor.store import open_store

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "-c", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _until(check: Any, limit: float, what: str) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(check)
        if found:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"gave up waiting for {what}")


async def test_page_written_before_a_sigkill_is_delivered_once_after_restart(
    tmp_path: Path,
) -> None:
    sim = Simulator(tls=True, api_key=DEMO_API_KEY, smtp_password=DEMO_API_KEY)
    await sim.start()
    pager_port = _free_port()
    config = simulated_config(sim, tmp_path, page_url=f"http://127.0.0.1:{pager_port}/page")
    store_url = f"sqlite:///{(tmp_path / 'availmon.db').resolve()}"
    log = tmp_path / "daemon.log"
    sim.set_fault("api", "5xx", status=500)
    first = _daemon(config, log)
    runner: web.AppRunner | None = None
    second: subprocess.Popen[bytes] | None = None
    try:

        def pending_trigger() -> Any:
            store = open_store(store_url)
            try:
                items = [i for i in store.outbox() if i.event == "trigger"]
                return items if items and all(i.state == "pending" for i in items) else None
            finally:
                store.close()

        items = await _until(pending_trigger, 60, "the trigger in the outbox")
        incident_id = items[0].incident_id
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)

        received: list[dict[str, Any]] = []

        async def page(request: web.Request) -> web.Response:
            received.append(await request.json())
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/page", page)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", pager_port).start()

        second = _daemon(config, log)
        triggers = lambda: [p for p in received if p["event"] == "trigger"]  # noqa: E731
        await _until(triggers, 60, "the page after the restart")
        await asyncio.sleep(3)  # a duplicate, if any, would arrive now
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if runner is not None:
            await runner.cleanup()
        await sim.stop()

    pages = [p for p in received if p["event"] == "trigger"]
    assert len(pages) == 1, log.read_text()[-3000:]
    assert pages[0]["incident"]["id"] == incident_id
    assert pages[0]["incident"]["dedup_key"] == f"availmon/simulated/{incident_id}"
    store = open_store(store_url)
    try:
        critical = store.list_incidents(service="simulated", severity="critical")
        # the outage went on across the restart: still one incident, not a second page
        assert [i.id for i in critical] == [incident_id]
        kinds = [e.kind for e in store.events(incident_id)]
        assert "notified" in kinds
    finally:
        store.close()
