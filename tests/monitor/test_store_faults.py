"""A store that refuses writes during an outage: the daemon keeps measuring and pages.

Real time, a real daemon against the built-in simulator, and a real fault of the store:

* another process holds SQLite's write lock for 15 s (what a CLI ``incidents ack`` or a
  backup does), or
* the store's file system is full (a small tmpfs filled to the last byte).

While the store refuses, the simulated API fails with 5xx long enough to meet the
Critical rule (5 of 10 s). Each test checks that no launch was skipped and no second was
excused as the monitor's own stall, that the Critical Issue was opened for the outage's
first second and paged exactly once (from memory, while the store refused), and that once
the store takes writes again every second of the fault window is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import DEMO_API_KEY, PageReceiver, simulated_config
from monitor.simulator import Simulator
from monitor.store import open_store
from monitor.verdicts import UnknownReason, Verdict
from tests.loopback import minimal_config, run_cli

pytestmark = pytest.mark.slow

SERVICE = "simulated"
LOCK_SECONDS = 15


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[Simulator, PageReceiver]]:
    sim = Simulator(tls=True, api_key=DEMO_API_KEY, smtp_password=DEMO_API_KEY)
    receiver = PageReceiver()
    await sim.start()
    await receiver.start()
    try:
        yield sim, receiver
    finally:
        await receiver.stop()
        await sim.stop()


async def _until(check: Callable[[], bool], what: str, polls: int = 600) -> None:
    """Poll `check` (every 0.1 s, at most `polls` times: a bound, not a measure)."""
    for _ in range(polls):
        if check():
            return
        await asyncio.sleep(0.1)
    assert check(), f"never happened: {what}"


def _skipped(d: Daemon) -> float:
    return sum(
        s.value
        for metric in d.metrics.registry.collect()
        if metric.name == "availmon_launches_skipped"
        for s in metric.samples
        if s.name.endswith("_total")
    )


async def _outage_while_refusing(
    d: Daemon,
    sim: Simulator,
    receiver: PageReceiver,
    refuse: Callable[[], object],
    restore: Callable[[], object],
) -> tuple[int, int]:
    """Refuse, break the API until the policy opens a Critical Issue and it is paged,
    restore the store, heal the API; returns the fault window [from, to]."""
    await _until(lambda: d.last_final.get(SERVICE, 0) > 0, "first final second")
    await asyncio.to_thread(refuse)  # the test's own blocking work stays off the loop
    window_from = int(time.time())
    sim.set_fault("api", "5xx", status=503)
    policy = d.policy
    assert policy is not None
    await _until(lambda: bool(policy.active()), "the Critical Issue opened (in memory)")
    await _until(lambda: bool(receiver.pages), "the page, sent while the store refuses")
    assert d.writer is not None and d.writer.pending()["effects"] > 0, "store took writes"
    # the trouble is visible: readiness, and the writer's metrics
    await _until(lambda: not d.ready()[0], "/readyz turning 503")
    assert d.ready()[1].startswith("store: ")
    # the status says how far behind the store is
    behind = d.stored_through(SERVICE)
    assert behind is not None and behind < d.last_final[SERVICE]
    # and what the API shows of the verdicts is only what is stored (a crash now would
    # lose the rest): the last stored second, not the last decided one
    shown = d.stored_verdicts[SERVICE]["service"]
    assert shown.second <= behind < d.last_verdicts[(SERVICE, "service")].second
    await _until(
        lambda: (_sample(d, "availmon_store_pending", kind="verdicts") or 0) > 0,
        "availmon_store_pending",
    )
    await asyncio.to_thread(restore)
    sim.set_fault("api", "ok")
    window_to = int(time.time())
    writer = d.writer
    await _until(lambda: not any(writer.pending().values()), "the writer caught up", 900)
    await _until(lambda: d.last_final.get(SERVICE, 0) > window_to + 3, "seconds after")
    await _until(lambda: d.ready()[0], "/readyz ready again")
    stored = d.stored_through(SERVICE)
    assert stored is not None and stored >= window_to
    assert (_sample(d, "availmon_store_errors_total", operation="seconds") or 0) > 0
    return window_from, window_to


def _sample(d: Daemon, name: str, **labels: str) -> float | None:
    return d.metrics.registry.get_sample_value(name, labels)


def _check(d: Daemon, sim: Simulator, receiver: PageReceiver, window: tuple[int, int]) -> None:
    store = d.store
    assert store is not None
    start, end = window
    assert _skipped(d) == 0
    # every second of the window is stored, none twice, none excused as a monitor stall
    for channel in ("api", "smtp", "service"):
        runs = store.runs(SERVICE, channel, start, end + 1, "demo")
        assert runs[0].first == start and runs[-1].last == end, channel
        for a, b in itertools.pairwise(runs):
            assert b.first == a.last + 1, (channel, a, b)
        assert not [r for r in runs if r.reason is UnknownReason.MONITOR_STALLED], channel
        assert not [r for r in runs if r.reason is UnknownReason.MONITOR_DOWN], channel
    # one incident, for the outage's first second
    truth = sim.ground_truth(start, end + 1)["service"]
    incidents = store.list_incidents(service=SERVICE)
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident.severity == "critical"
    assert incident.first_unavailable == min(truth)
    stored = store.runs(SERVICE, "service", start, end + 1, "demo")
    first_stored = min(r.first for r in stored if r.verdict is Verdict.UNAVAILABLE)
    assert incident.first_unavailable == first_stored
    # exactly one page, with the stored incident's key, recorded as sent from memory
    triggers = [p["body"] for p in receiver.pages if p["body"].get("event") == "trigger"]
    assert len(triggers) == 1
    assert triggers[0]["incident"]["dedup_key"] == incident.dedup_key
    outbox = store.outbox(incident.id)
    assert [(o.event, o.state) for o in outbox if o.event == "trigger"] == [("trigger", "sent")]
    notified = [e for e in store.events(incident.id) if e.kind == "notified"]
    assert [e.data.get("from_memory") for e in notified][:1] == [True]


def _locker(db: Path) -> subprocess.Popen[str]:
    code = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "db.execute('ROLLBACK')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


async def test_another_process_holding_the_write_lock(
    rig: tuple[Simulator, PageReceiver], tmp_path: Path
) -> None:
    sim, receiver = rig
    settings = load(simulated_config(sim, tmp_path / "data", page_url=receiver.url))
    d = Daemon(settings)
    await d.start()
    locker: list[subprocess.Popen[str]] = []
    locked_at: list[float] = []

    def refuse() -> None:
        locker.append(_locker(tmp_path / "data" / "availmon.db"))
        locked_at.append(time.monotonic())

    def restore() -> None:
        # the lock is held for LOCK_SECONDS in all, however soon the page came
        time.sleep(max(0.0, LOCK_SECONDS - (time.monotonic() - locked_at[0])))
        proc = locker[0]
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(10)

    try:
        window = await _outage_while_refusing(d, sim, receiver, refuse, restore)
    finally:
        for proc in locker:
            proc.kill()
        await d.stop()
    _check(d, sim, receiver, window)
    assert d.writer is not None and d.writer.errors > 0  # the store really refused


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the file system has no byte left."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError:
                break
        while True:
            try:
                f.write(b"\0")
            except OSError:
                break
    return filler


async def test_a_full_disk(rig: tuple[Simulator, PageReceiver], tmp_path: Path) -> None:
    sim, receiver = rig
    data = tmp_path / "data"
    with _tmpfs(data, "4m"):
        settings = load(simulated_config(sim, data, page_url=receiver.url))
        d = Daemon(settings)
        await d.start()
        filler: list[Path] = []

        def refuse() -> None:
            # an empty write-ahead log, so that the very next commit needs new space
            with sqlite3.connect(data / "availmon.db") as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filler.append(_fill(data))

        def restore() -> None:
            os.unlink(filler[0])

        try:
            window = await _outage_while_refusing(d, sim, receiver, refuse, restore)
        finally:
            await d.stop()
        _check(d, sim, receiver, window)
        assert d.writer is not None and d.writer.errors > 0  # the disk really was full
        assert d.store is not None
        await asyncio.to_thread(d.store.close)


def test_a_read_only_store_at_start_is_one_line(tmp_path: Path) -> None:
    """`availmon run` on a store it cannot write: one line, exit 2, no traceback."""
    data = tmp_path / "ro"
    with _tmpfs(data, "1m"):
        (data / "store").mkdir()
        open_store(f"sqlite:///{data}/store/a.db").close()
        subprocess.run(["mount", "-o", "remount,ro", str(data)], check=True)
        cfg = minimal_config(tmp_path / "c.toml", f"sqlite:///{data}/store/a.db")
        done = run_cli("run", "-c", str(cfg))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"availmon: error: store: cannot open SQLite store {data}/")
