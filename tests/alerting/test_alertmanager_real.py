"""The Alertmanager notifier against the real Debian `prometheus-alertmanager` binary."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerting.notifiers import NOTIFIERS
from alerting.notifiers.alertmanager import AlertmanagerConfig, AlertmanagerNotifier
from monitor.clock import SystemClock
from monitor.store.base import OutboxItem
from tests.loopback import free_port

BINARY = "/usr/bin/prometheus-alertmanager"
pytestmark = [
    pytest.mark.external,
    pytest.mark.skipif(not os.access(BINARY, os.X_OK), reason=f"{BINARY} is not installed"),
]

CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
receivers:
  - name: blackhole
"""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "am.yml").write_text(CONFIG)
    port = free_port()
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        resp.raise_for_status()
        return await resp.json()


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(150):  # up to ~30 s on a loaded machine
        try:
            async with session.get(f"{base}/-/ready", timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.2)
    pytest.fail("alertmanager did not become ready")


async def poll_alerts(session: aiohttp.ClientSession, base: str, want_present: bool) -> list[Any]:
    alerts: list[Any] = []
    for _ in range(100):  # bounded: up to ~20 s
        alerts = [
            a
            for a in await get_json(session, f"{base}/api/v2/alerts")
            if a["labels"].get("incident_id") == "7"
        ]
        if bool(alerts) == want_present:
            return alerts
        await asyncio.sleep(0.2)
    pytest.fail(f"alert never {'appeared' if want_present else 'went away'}: {alerts}")


def item(event: str, seq: int) -> OutboxItem:
    incident = {
        "id": 7, "service": "sparkpost-us", "severity": "critical", "state": "open",
        "kind": "unavailable", "dedup_key": "availmon/sparkpost-us/7",
        "opened_at": SystemClock().wall() - 60, "unavailable_seconds": 30,
    }  # fmt: skip
    payload = {
        "seq": seq, "event": event, "tier": "critical", "incident": incident,
        "summary": f"sparkpost-us unavailable ({event})", "text": "30 s unavailable",
        "at": SystemClock().wall(), "vantage": "vp-1",
    }  # fmt: skip
    return OutboxItem(seq, 7, "am", event, payload, SystemClock().wall(), SystemClock().wall())


async def test_trigger_fires_and_resolve_clears_in_real_alertmanager(
    alertmanager: str, session: aiohttp.ClientSession
) -> None:
    await wait_ready(session, alertmanager)
    cfg = AlertmanagerConfig(name="am", url=alertmanager, labels={"team": "email-sre"})
    n = NOTIFIERS["alertmanager"](cfg, session, SystemClock())
    assert isinstance(n, AlertmanagerNotifier)
    try:
        await n.send(item("trigger", 1))
        (alert,) = await poll_alerts(session, alertmanager, want_present=True)
        assert alert["labels"] == {
            "alertname": "AvailmonCriticalIssue",
            "service": "sparkpost-us",
            "severity": "critical",
            "incident_id": "7",
            "team": "email-sre",
        }
        assert alert["annotations"]["summary"] == "sparkpost-us unavailable (trigger)"
        assert alert["status"]["state"] in ("active", "unprocessed")
        # the periodic re-send keeps the same alert (same labels → same fingerprint)
        assert await n.resend_active() == 1
        (again,) = await poll_alerts(session, alertmanager, want_present=True)
        assert again["fingerprint"] == alert["fingerprint"]

        await n.send(item("resolve", 2))
        assert await poll_alerts(session, alertmanager, want_present=False) == []
        assert n.active == {}
    finally:
        await n.close()
