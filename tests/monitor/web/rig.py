"""A real daemon against the built-in simulator, with a `[status]` table, and the steps of
an outage that the web tests walk through (a Critical Issue, a note, an ack, the
recovery, the resolve)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from alerting.model import IncidentState, Severity
from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import simulated_config
from monitor.simulator import Simulator
from monitor.store.base import Incident
from tests.loopback import until, until_value

API_KEY = "web-secret-key-4711"
NOTE = "internal-note-do-not-publish"
ACKER = "alice-acker"
RESOLVE_NOTE = "vendor fixed a load balancer"
#: what no public page or feed may hold
PRIVATE = (NOTE, API_KEY, ACKER, RESOLVE_NOTE, "attempt_id", "evidence")


def config(sim: Simulator, tmp: Path, status: str = "", monitor_lines: str = "") -> Path:
    """simulated_config with `status` (TOML lines) as its `[status]` table and
    `monitor_lines` added to `[monitor]`."""
    path = simulated_config(sim, tmp, api_key=API_KEY, monitor_lines=monitor_lines)
    if status:
        path.write_text(path.read_text() + f"\n[status]\n{status}\n")
    return path


@contextlib.asynccontextmanager
async def running(
    tmp: Path, status: str = "", monitor_lines: str = ""
) -> AsyncIterator[tuple[Daemon, Simulator]]:
    sim = Simulator(tls=False, api_key=API_KEY, smtp_password=API_KEY)
    await sim.start()
    try:
        path = config(sim, tmp, status, monitor_lines)
        d = Daemon(load(path), config_path=path)
        await d.start()
        try:
            await until("a measured second", lambda: d.last_final.get("simulated"), polls=300)
            yield d, sim
        finally:
            await d.stop()
    finally:
        await sim.stop()


async def _incident(d: Daemon, test: object = None) -> Incident | None:
    assert d.store is not None
    found = await asyncio.to_thread(d.store.list_incidents, "simulated")
    for i in found:
        if i.severity == Severity.CRITICAL and (test is None or i.state == test):
            return i
    return None


async def open_critical(d: Daemon, sim: Simulator) -> int:
    """The api fails until a Critical Issue is open: its id."""
    sim.set_fault("api", "5xx", status=503)
    inc = await until_value("the Critical Issue", lambda: _incident(d, IncidentState.OPEN), 400)
    return int(inc.id)


async def note_and_ack(d: Daemon, ident: int) -> None:
    assert d.incidents is not None
    await asyncio.to_thread(d.incidents.note, ident, ACKER, NOTE)
    await asyncio.to_thread(d.incidents.ack, ident, ACKER)


async def recover_and_resolve(d: Daemon, sim: Simulator, ident: int) -> None:
    assert d.incidents is not None
    sim.set_fault("api", "ok")
    await until_value("the recovery", lambda: _incident(d, IncidentState.RECOVERED), 400)
    await asyncio.to_thread(d.incidents.resolve, ident, ACKER, RESOLVE_NOTE)
