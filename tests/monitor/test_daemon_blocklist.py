"""The whole daemon's blocklist checks against the simulator's DNSBL zone on loopback:
a listing opens a Non-Critical Issue of kind `blocklisted`, a hanging zone becomes a
`blocklist_blind` condition without delisting anything, two clean checks resolve it, the
metrics follow, and the Spamhaus DQS key is in no log, metric, API answer or stored row.
Every wait is a bounded poll (tests/loopback.py)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import DEMO_SENDING_IP, simulated_config
from monitor.simulator import Simulator
from monitor.store.base import Incident
from tests.loopback import until, until_value

pytestmark = pytest.mark.slow

KEY = "dqskey0123456789abcdefghij"
ZEN = "zen.spamhaus.org"


@pytest.fixture
async def sim() -> Any:
    s = Simulator(tls=False, api_key="k")
    await s.start()
    yield s
    await s.stop()


def _config(sim: Simulator, tmp_path: Path) -> Path:
    path = simulated_config(sim, tmp_path, api_key="k", dnsbl_interval=1)
    text = path.read_text().replace(
        "timeout_seconds = 1\n",
        'timeout_seconds = 0.5\nblind_after_checks = 2\ndqs_key = "env:AVAILMON_TEST_DQS"\n',
    )
    path.write_text(text)
    return path


def _blocklist_issue(d: Daemon) -> Incident | None:
    assert d.store is not None
    found = [i for i in d.store.list_incidents(severity="non_critical") if "blocklist" in i.kind]
    return found[0] if found else None


async def test_listing_blind_and_delisting_through_the_daemon(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AVAILMON_TEST_DQS", KEY)
    caplog.set_level(logging.DEBUG)
    d = Daemon(load(_config(sim, tmp_path)))
    await d.start()
    get = d.metrics.registry.get_sample_value
    listed = {"service": "simulated", "target": DEMO_SENDING_IP, "zone": ZEN, "vantage": "combined"}
    checks = {"service": "simulated", "zone": ZEN, "vantage": "combined"}
    try:
        await until(
            "a clean check",
            lambda: (
                (get("availmon_blocklist_checks_total", {**checks, "result": "clean"}) or 0) >= 1
            ),
        )
        assert get("availmon_blocklist_listed", listed) == 0
        assert d.store is not None
        assert d.store.list_incidents() == []
        # the query carries the key; what availmon keeps names the list
        assert any(n.endswith(f".{KEY}.zen.dq.spamhaus.net") for n in sim.dnsbl.asked)
        sim.dnsbl.list(DEMO_SENDING_IP, ZEN, ["127.0.0.2"], "https://check.spamhaus.org/", KEY)

        async def issue() -> Incident | None:
            return _blocklist_issue(d)

        inc = await until_value("the blocklisted issue", issue)
        assert (inc.kind, inc.state) == ("blocklisted", "open")
        [listing] = inc.data["listings"]
        assert (listing["zone"], listing["target"], listing["codes"], listing["txt"]) == (
            ZEN,
            DEMO_SENDING_IP,
            ["127.0.0.2"],
            "https://check.spamhaus.org/",
        )
        assert get("availmon_blocklist_listed", listed) == 1
        # the zone hangs: errors, never a delisting; two such checks are a blind condition
        sim.dnsbl.set_fault(f"{KEY}.zen.dq.spamhaus.net", "hang")
        await until(
            "a blind condition",
            lambda: "blocklist_blind" in d.store.get_incident(inc.id).data.get("kinds", []),
            polls=200,
        )
        assert (get("availmon_blocklist_checks_total", {**checks, "result": "error"}) or 0) >= 2
        assert [s.ended_at for s in d.store.spells("simulated")] == [None]
        assert d.store.get_incident(inc.id).state == "open"
        # readable and delisted: resolved after two clean checks
        sim.dnsbl.set_fault(f"{KEY}.zen.dq.spamhaus.net", "ok")
        sim.dnsbl.delist(DEMO_SENDING_IP, ZEN, KEY)
        await until(
            "the resolve", lambda: d.store.get_incident(inc.id).state == "resolved", polls=200
        )
        [spell] = d.store.spells("simulated")
        assert spell.ended_at is not None and spell.zone == ZEN
        assert get("availmon_blocklist_listed", listed) == 0
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{d.http_port}"
            async with http.get(f"{base}/metrics") as r:
                metrics = await r.text()
            async with http.get(f"{base}/api/v1/incidents/{inc.id}") as r:
                api = await r.text()
        assert "availmon_blocklist_listed{" in metrics and KEY not in metrics
        assert ZEN in api and KEY not in api
    finally:
        await d.stop()
    db = sqlite3.connect(tmp_path / "availmon.db")
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        for row in db.execute(f"SELECT * FROM {table}"):
            assert KEY not in repr(row), table
    db.close()
    assert KEY not in caplog.text
    assert "blocklist: 192.0.2.25 (simulated) listed on zen.spamhaus.org" in caplog.text


async def test_a_reload_changes_the_checks_and_keeps_what_is_listed(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AVAILMON_TEST_DQS", KEY)
    path = _config(sim, tmp_path)
    d = Daemon(load(path), config_path=path)
    await d.start()
    get = d.metrics.registry.get_sample_value
    uribl = {"service": "simulated", "zone": "multi.uribl.com", "vantage": "combined"}
    try:
        assert d.store is not None
        store = d.store
        sim.dnsbl.list(DEMO_SENDING_IP, ZEN, ["127.0.0.2"], None, KEY)
        await until("the listing", lambda: len(store.spells("simulated")) == 1)
        path.write_text(
            path.read_text().replace(
                'domain_zones = ["dbl.spamhaus.org"]',
                'domain_zones = ["dbl.spamhaus.org", "multi.uribl.com"]',
            )
        )
        result = await d.reload()
        assert result.applied, result.message
        await until(
            "a check of the added zone",
            lambda: (
                (get("availmon_blocklist_checks_total", {**uribl, "result": "clean"}) or 0) >= 1
            ),
        )
        assert len(store.spells("simulated", open_only=True)) == 1  # the listing carries on
        # the checks removed from the config: their jobs and series go
        text = path.read_text()
        path.write_text(text[: text.index("[[services.blocklists]]")])
        assert (await d.reload()).applied
        assert d.scheduler is not None
        assert [j.id for j in d.scheduler.get_jobs() if j.id.startswith("blocklist/")] == []
        assert get("availmon_blocklist_checks_total", {**uribl, "result": "clean"}) is None
        # nothing watches the listing now: it is not taken for a delisting
        assert "stays listed in the store: no configured check asks" in caplog.text
        policy = d.policy
        assert policy is not None
        judged = policy.last_second("simulated") or 0
        await until(
            "two more seconds judged",
            lambda: (policy.last_second("simulated") or 0) >= judged + 2,
        )
        assert d._flush()
        [issue] = store.list_incidents()
        assert (issue.kind, issue.state) == ("blocklisted", "open")
        assert [x.ended_at for x in store.spells("simulated")] == [None]
        # the check comes back, and the target was delisted meanwhile: the check starts
        # from the store's open spell, so the delisting closes it (not left open for ever)
        sim.dnsbl.delist(DEMO_SENDING_IP, ZEN, KEY)
        path.write_text(text)
        assert (await d.reload()).applied
        await until(
            "the spell closed by the re-added check",
            lambda: [x.ended_at is not None for x in store.spells("simulated")] == [True],
        )
    finally:
        await d.stop()


async def test_a_reload_that_leaves_a_check_as_it_was_keeps_its_schedule_and_state(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload for something else (a service's description) neither asks the lists again
    at once nor forgets what the check was counting."""
    monkeypatch.setenv("AVAILMON_TEST_DQS", KEY)
    path = simulated_config(sim, tmp_path, api_key="k", dnsbl_interval=60)
    d = Daemon(load(path), config_path=path)
    await d.start()
    try:
        assert d.scheduler is not None and d.blocklists is not None
        [job] = [j for j in d.scheduler.get_jobs() if j.id.startswith("blocklist/")]
        await until("the first check", lambda: d.blocklists is not None and bool(
            d.metrics.registry.get_sample_value(
                "availmon_blocklist_checks_total",
                {"service": "simulated", "zone": ZEN, "result": "clean", "vantage": "combined"},
            )
        ))  # fmt: skip
        due, watch = job.next_run_time, d.blocklists.watches["simulated"]
        path.write_text(path.read_text().replace(
            'description = "the built-in simulated email platform"',
            'description = "the simulated platform, renamed"',
        ))  # fmt: skip
        result = await d.reload()
        assert result.applied and result.changes is not None
        assert "simulated" in result.changes.changed
        [again] = [j for j in d.scheduler.get_jobs() if j.id.startswith("blocklist/")]
        assert again.next_run_time == due  # not now: the lists are not asked again yet
        assert d.blocklists.watches["simulated"] is watch
    finally:
        await d.stop()
