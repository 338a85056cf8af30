"""The guard against store calls on the event loop catches availmon's and only availmon's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from alerting.incidents import Incidents
from monitor.clock import FakeClock
from monitor.config import parse
from monitor.store import guard, open_store


def _incidents(tmp_path: Path) -> Incidents:
    settings = parse(
        {
            "store": {"url": f"sqlite:///{tmp_path}/g.db"},
            "services": [
                {"name": "s", "probes": [{"type": "http", "name": "a", "url": "http://x/"}]}
            ],
        }
    )
    store = open_store(settings.store.url)
    assert isinstance(store, guard.GuardedStore)  # the suite turns the guard on
    return Incidents(settings, store, FakeClock(1_800_000_000))


async def test_a_call_from_availmon_on_the_loop_is_caught(tmp_path: Path) -> None:
    incidents = _incidents(tmp_path)
    with pytest.raises(guard.StoreCallOnLoop, match=r"alerting\.incidents\.list: Store\.list"):
        incidents.list()
    assert guard.VIOLATIONS == ["alerting.incidents.list: Store.list_incidents"]
    guard.VIOLATIONS.clear()
    # the same call in a worker thread is what the daemon does
    assert await asyncio.to_thread(incidents.list) == []


async def test_a_tests_own_call_on_the_loop_is_not_checked(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    assert store.list_incidents() == []
    assert guard.VIOLATIONS == []


def test_off_without_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(guard.ENV)
    store = open_store(f"sqlite:///{tmp_path}/o.db")
    assert not isinstance(store, guard.GuardedStore)
