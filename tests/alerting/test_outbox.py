"""The outbox dispatcher: ordering per (incident, notifier), isolation between notifiers,
backoff with a FakeClock, timeline records, and delivery after a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from alerting.model import IncidentState, OutboxState, Severity
from alerting.notifiers import NOTIFIERS
from alerting.notifiers.base import TransportError
from alerting.notifiers.webhook import WebhookConfig
from alerting.outbox import Dispatcher
from monitor.clock import FakeClock
from monitor.store.base import Incident, OutboxItem
from monitor.store.sqlite import SQLiteStore

T0 = 1_763_894_400.0
REPO = Path(__file__).resolve().parents[2]


class FakeNotifier:
    """A hand-written notifier: records sends, raises scripted errors, can hang."""

    def __init__(self, name: str, outcomes: list[Exception | None] | None = None, **cfg: Any):
        self.name = name
        self.config = WebhookConfig(name=name, url="http://127.0.0.1:9/", **cfg)
        self.outcomes = list(outcomes or [])
        self.sent: list[tuple[int, str, int]] = []
        self.hang: asyncio.Event | None = None
        self.closed = False

    def validate(self) -> None:
        pass

    async def send(self, item: OutboxItem) -> None:
        self.sent.append((item.incident_id, item.event, item.payload["seq"]))
        if self.hang is not None:
            await self.hang.wait()
        if self.outcomes:
            outcome = self.outcomes.pop(0)
            if outcome is not None:
                raise outcome

    async def close(self) -> None:
        self.closed = True


def payload(incident: Incident, event: str, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "event": event,
        "tier": "critical",
        "incident": {
            "id": incident.id,
            "service": incident.service,
            "severity": incident.severity,
            "state": incident.state,
            "kind": incident.kind,
            "dedup_key": incident.dedup_key,
            "opened_at": incident.opened_at,
        },
        "summary": f"{incident.service} {event}",
        "text": f"{incident.service} {event}\nline two",
        "at": T0,
        "vantage": "vp-1",
    }


def item(incident: Incident, notifier: str, event: str = "trigger", seq: int = 1) -> OutboxItem:
    return OutboxItem(0, incident.id, notifier, event, payload(incident, event, seq), T0, T0)


def new_incident(store: SQLiteStore, service: str = "sparkpost-us") -> Incident:
    return store.create_incident(
        Incident(0, service, Severity.CRITICAL, IncidentState.OPEN, "unavailable", "", opened_at=T0)
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(str(tmp_path / "a.db"))
    s.migrate()
    return s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def results() -> list[tuple[str, str]]:
    return []


def dispatcher(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]], *notifiers: Any, **kw: Any
) -> Dispatcher:
    return Dispatcher(
        store,
        {n.name: n for n in notifiers},
        clock,
        on_result=lambda n, o: results.append((n, o)),
        rng=random.Random(7),
        **kw,
    )


async def test_sent_item_is_recorded_in_outbox_timeline_and_metric(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    pd = FakeNotifier("pd")
    store.enqueue([item(inc, "pd")])
    d = dispatcher(store, clock, results, pd)
    assert await d.drain(10)
    (row,) = store.outbox(inc.id)
    assert (row.state, row.tries, row.sent_at, row.last_error) == ("sent", 1, T0, None)
    assert results == [("pd", "sent")]
    (ev,) = store.events(inc.id)
    assert (ev.kind, ev.data) == ("notified", {"notifier": "pd", "event": "trigger", "tries": 1})
    await d.close()
    assert pd.closed


async def test_later_item_waits_behind_a_retrying_one_of_the_same_pair(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    pd = FakeNotifier("pd", [TransportError("HTTP 503", permanent=False)])
    store.enqueue([item(inc, "pd", "trigger", 1), item(inc, "pd", "update", 2)])
    d = dispatcher(store, clock, results, pd)
    assert await d.drain(10)
    assert pd.sent == [(inc.id, "trigger", 1)]  # the update did not overtake it
    trigger, update = store.outbox(inc.id)
    assert (trigger.state, trigger.tries, update.state, update.tries) == (
        "pending",
        1,
        "pending",
        0,
    )
    clock.set_wall(trigger.next_attempt_at)
    assert await d.drain(10)
    assert pd.sent == [(inc.id, "trigger", 1), (inc.id, "trigger", 1), (inc.id, "update", 2)]
    assert [i.state for i in store.outbox(inc.id)] == ["sent", "sent"]
    assert results == [("pd", "retry"), ("pd", "sent"), ("pd", "sent")]


async def test_backoff_is_exponential_with_full_jitter_and_capped(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    pd = FakeNotifier("pd", [TransportError("HTTP 500")] * 5)
    store.enqueue([item(inc, "pd")])
    d = dispatcher(store, clock, results, pd, base_backoff=2.0, max_backoff=10.0)
    twin = random.Random(7)  # the same draws the dispatcher makes
    for cap in (2.0, 4.0, 8.0, 10.0, 10.0):
        now = clock.wall()
        assert await d.drain(10)
        (row,) = store.outbox(inc.id)
        assert row.next_attempt_at == pytest.approx(now + twin.uniform(0, cap))
        clock.set_wall(row.next_attempt_at)
    assert await d.drain(10)
    assert [o for _, o in results] == ["retry"] * 5 + ["sent"]
    assert store.outbox(inc.id)[0].tries == 6


async def test_retry_after_is_honoured(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    pd = FakeNotifier("pd", [TransportError("HTTP 429", retry_after=42.0)])
    store.enqueue([item(inc, "pd")])
    d = dispatcher(store, clock, results, pd)
    assert await d.drain(10)
    (row,) = store.outbox(inc.id)
    assert row.next_attempt_at == T0 + 42.0
    clock.advance(41)
    assert await d.drain(10)
    assert len(pd.sent) == 1  # not before Retry-After
    clock.advance(1)
    assert await d.drain(10)
    assert store.outbox(inc.id)[0].state == "sent"
    kinds = [(e.kind, e.data.get("next_attempt_at")) for e in store.events(inc.id)]
    assert kinds == [("notify_retry", T0 + 42.0), ("notified", None)]


async def test_permanent_error_fails_at_once_and_frees_the_pair(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    pd = FakeNotifier("pd", [TransportError("HTTP 400: invalid routing key", permanent=True)])
    store.enqueue([item(inc, "pd", "trigger", 1), item(inc, "pd", "resolve", 2)])
    d = dispatcher(store, clock, results, pd)
    assert await d.drain(10)
    first, second = store.outbox(inc.id)
    assert (first.state, first.tries, first.last_error) == (
        "failed", 1, "HTTP 400: invalid routing key",
    )  # fmt: skip
    assert second.state == "sent"
    failed = store.events(inc.id)[0]
    assert (failed.kind, failed.data["error"]) == ("notify_failed", "HTTP 400: invalid routing key")
    assert results == [("pd", "failed"), ("pd", "sent")]


async def test_gives_up_after_max_tries(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    # no time budget for pages: max_tries alone decides
    pd = FakeNotifier(
        "pd", [TransportError("HTTP 502")] * 10, max_tries=3, page_give_up_after_seconds=0
    )
    store.enqueue([item(inc, "pd")])
    d = dispatcher(store, clock, results, pd)
    for _ in range(5):
        assert await d.drain(10)
        clock.advance(400)
    (row,) = store.outbox(inc.id)
    assert (row.state, row.tries) == ("failed", 3)
    assert len(pd.sent) == 3
    assert [o for _, o in results] == ["retry", "retry", "failed"]


async def _retry_until_sent(
    store: SQLiteStore, clock: FakeClock, d: Dispatcher, inc: Incident, limit: int = 200
) -> list[float]:
    """Drive the dispatcher from one retry to the next; the waits between tries."""
    waits: list[float] = []
    for _ in range(limit):
        assert await d.drain(10)
        (row,) = store.outbox(inc.id)
        if row.state != "pending":
            return waits
        waits.append(row.next_attempt_at - clock.wall())
        clock.advance(max(row.next_attempt_at - clock.wall(), 0) + 0.001)
    raise AssertionError("never sent")


async def test_a_page_retries_at_least_every_ten_seconds_until_the_receiver_is_back(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    """A receiver failing for ten minutes: a page (critical tier) is not given up after
    max_tries, and never waits more than page_retry_max_seconds between tries, so it goes
    out within that long of the receiver answering again."""
    inc = new_incident(store)
    start = clock.wall()
    failing_for = 600.0

    class Outage(FakeNotifier):
        async def send(self, item: OutboxItem) -> None:
            self.sent.append((item.incident_id, item.event, item.payload["seq"]))
            if clock.wall() - start < failing_for:
                raise TransportError("HTTP 500")

    pd = Outage("pd", max_tries=3)
    store.enqueue([item(inc, "pd")])
    d = dispatcher(store, clock, results, pd)
    waits = await _retry_until_sent(store, clock, d, inc)
    (row,) = store.outbox(inc.id)
    assert row.state == "sent"
    assert max(waits) <= 10.0
    assert row.sent_at is not None and row.sent_at - (start + failing_for) <= 10.0
    assert len(pd.sent) > 60  # ten minutes at most 10 s apart, past max_tries = 3


async def test_a_page_honours_retry_after(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    pd = FakeNotifier("pd", [TransportError("HTTP 429", retry_after=45), None])
    store.enqueue([item(inc, "pd")])
    d = dispatcher(store, clock, results, pd)
    waits = await _retry_until_sent(store, clock, d, inc)
    assert waits == [45.0]


async def test_a_ticket_keeps_the_long_backoff(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    pd = FakeNotifier("pd", [TransportError("HTTP 500")] * 9 + [None], max_tries=20)
    ticket = item(inc, "pd")
    ticket.payload["tier"] = "ticket"
    store.enqueue([ticket])
    d = dispatcher(store, clock, results, pd)
    waits = await _retry_until_sent(store, clock, d, inc)
    assert len(waits) == 9 and max(waits) > 10.0  # 2^8 s caps: not the page cap


async def test_unexpected_exception_is_retried_not_fatal(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    pd = FakeNotifier("pd", [KeyError("bug")])
    store.enqueue([item(inc, "pd")])
    d = dispatcher(store, clock, results, pd)
    assert await d.drain(10)
    (row,) = store.outbox(inc.id)
    assert (row.state, row.last_error) == ("pending", "internal error: KeyError")


async def test_item_for_unconfigured_notifier_fails_with_reason(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    store.enqueue([item(inc, "removed-notifier")])
    d = dispatcher(store, clock, results, FakeNotifier("pd"))
    assert await d.drain(10)
    (row,) = store.outbox(inc.id)
    assert row.state == "failed"
    assert row.last_error == "notifier 'removed-notifier' is not configured"
    assert results == [("removed-notifier", "failed")]


async def test_hung_notifier_does_not_delay_another(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    inc = new_incident(store)
    stuck, slack = FakeNotifier("stuck", timeout_seconds=60), FakeNotifier("slack")
    stuck.hang = asyncio.Event()
    store.enqueue([item(inc, "stuck"), item(inc, "slack")])
    d = dispatcher(store, clock, results, stuck, slack)
    for _ in range(40):  # bounded; a loaded machine may need more than one round
        assert not await d.drain(0.5)  # the stuck one is still in flight
        if results:
            break
    assert [r.state for r in store.outbox(inc.id)] == ["pending", "sent"]
    assert results == [("slack", "sent")]
    await d.close()  # cancels the hung send; the item stays pending for the next start
    assert store.outbox(inc.id)[0].state == "pending"


async def test_more_hung_pairs_than_a_batch_do_not_hide_other_notifiers(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    stuck, slack = FakeNotifier("stuck", timeout_seconds=60), FakeNotifier("slack")
    stuck.hang = asyncio.Event()
    incidents = [new_incident(store) for _ in range(5)]
    store.enqueue([item(inc, "stuck") for inc in incidents])
    store.enqueue([item(incidents[0], "slack")])  # the highest id of all
    d = dispatcher(store, clock, results, stuck, slack, batch=2)
    for _ in range(40):  # bounded rounds
        assert not await d.drain(0.2)
        if results:
            break
    assert results == [("slack", "sent")]
    await d.close()


async def test_pairs_of_one_notifier_do_not_wait_for_each_other(
    store: SQLiteStore, clock: FakeClock, results: list[tuple[str, str]]
) -> None:
    a, b = new_incident(store), new_incident(store, "other")
    pd = FakeNotifier("pd", [TransportError("HTTP 500"), None])
    store.enqueue([item(a, "pd"), item(b, "pd")])
    d = dispatcher(store, clock, results, pd)
    assert await d.drain(10)
    assert [r.state for r in store.outbox()] == ["pending", "sent"]


# ----------------------------------------------------------------- real receivers


Receiver = tuple[str, list[bytes]]


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    servers: list[TestServer] = []
    gates: list[asyncio.Event] = []

    async def start(hang: bool = False) -> Receiver:
        got: list[bytes] = []
        gate = asyncio.Event()
        gates.append(gate)

        async def handle(request: web.Request) -> web.Response:
            got.append(await request.read())
            if hang:
                await gate.wait()
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/hook")), got

    yield start
    for gate in gates:
        gate.set()
    for server in servers:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def webhook(
    name: str, url: str, session: aiohttp.ClientSession, clock: FakeClock, **kw: Any
) -> Any:
    return NOTIFIERS["webhook"](WebhookConfig(name=name, url=url, **kw), session, clock)


async def wait_for(cond: Callable[[], bool], what: str) -> None:
    for _ in range(400):  # bounded: ~20 s on a loaded machine
        if cond():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


async def test_run_delivers_on_wake_while_a_real_receiver_hangs(
    store: SQLiteStore,
    clock: FakeClock,
    results: list[tuple[str, str]],
    receiver: Any,
    session: aiohttp.ClientSession,
) -> None:
    inc = new_incident(store)
    hung_url, hung_got = await receiver(hang=True)
    ok_url, ok_got = await receiver()
    d = dispatcher(
        store,
        clock,
        results,
        webhook("hung", hung_url, session, clock, timeout_seconds=60),
        webhook("ok", ok_url, session, clock),
        poll_interval=60,  # only wake() can make the second delivery happen promptly
    )
    task = asyncio.create_task(d.run())
    try:
        store.enqueue([item(inc, "hung", "trigger", 1), item(inc, "ok", "trigger", 1)])
        d.wake()
        await wait_for(lambda: len(ok_got) == 1 and len(hung_got) == 1, "both receivers")
        store.enqueue([item(inc, "ok", "update", 2)])
        d.wake()
        await wait_for(lambda: len(ok_got) == 2, "the update")
        assert [json.loads(b)["event"] for b in ok_got] == ["trigger", "update"]
        assert store.outbox(inc.id)[0].state == "pending"  # still hanging
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await d.close()


ENQUEUE_AND_HANG = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from monitor.store.base import OutboxItem
from monitor.store.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[2])
store.migrate()
item = OutboxItem(**json.loads(sys.argv[3]))
store.enqueue([item])
print("enqueued", flush=True)
time.sleep(600)  # killed here: after the write, before any send
"""


async def test_item_written_before_a_sigkill_is_delivered_exactly_once_after_restart(
    tmp_path: Path, receiver: Any, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    db = str(tmp_path / "crash.db")
    first = SQLiteStore(db)
    first.migrate()
    inc = new_incident(first)
    first.close()
    it = item(inc, "hook")
    spec = {k: getattr(it, k) for k in ("id", "incident_id", "notifier", "event", "payload",
                                        "created_at", "next_attempt_at")}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ENQUEUE_AND_HANG, str(REPO), db, json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"enqueued"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    url, got = await receiver()
    store = SQLiteStore(db)
    store.migrate()
    d = Dispatcher(store, {"hook": webhook("hook", url, session, clock)}, clock)
    assert await d.drain(10)
    # the replay a restarted policy makes must not queue or send it again
    assert store.enqueue([replace(it)]) == []
    assert await d.drain(10)
    await d.close()
    assert len(got) == 1
    body = json.loads(got[0])
    assert (body["event"], body["incident"]["id"]) == ("trigger", inc.id)
    assert [i.state for i in store.outbox()] == ["sent"]
    assert [e.kind for e in store.events(inc.id)] == ["notified"]


async def test_restore_hands_stateful_notifiers_their_sent_items(
    store: SQLiteStore, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    from alerting.notifiers.alertmanager import AlertmanagerConfig, AlertmanagerNotifier

    inc = new_incident(store)
    sent, _ = store.enqueue([item(inc, "am", "trigger", 1), item(inc, "am", "resolve", 2)])
    store.update_outbox(replace(sent, state=OutboxState.SENT, tries=1, sent_at=T0))
    # the resolve is still pending: it must not count, the alert is still firing
    am = AlertmanagerNotifier(
        AlertmanagerConfig(name="am", url="http://127.0.0.1:9"), session, clock
    )
    d = Dispatcher(store, {"am": am}, clock)
    await d.restore()
    try:
        assert list(am.active) == [inc.dedup_key]
    finally:
        await d.close()


async def test_policy_events_reach_vendors_in_order(
    store: SQLiteStore, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    """The policy's Herald writes the items, the dispatcher delivers them: the payload
    contract between the two halves, end to end, with PagerDuty-shaped checks."""
    from alerting.escalation import Herald, Notice
    from alerting.incidents import Incidents
    from alerting.notifiers import build_notifiers
    from monitor.config import parse

    got: list[dict[str, Any]] = []

    async def pagerduty(request: web.Request) -> web.Response:
        event = await request.json()
        got.append(event)
        ok = len(event["routing_key"]) == 32 and len(event["dedup_key"]) <= 255
        if event["event_action"] == "trigger":
            p = event["payload"]
            ok = ok and bool(p["summary"]) and bool(p["source"]) and p["severity"] == "critical"
        return web.json_response({"status": "success" if ok else "invalid event"},
                                 status=202 if ok else 400)  # fmt: skip

    app = web.Application()
    app.router.add_post("/v2/enqueue", pagerduty)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    settings = parse(
        {
            "monitor": {"vantage": "vp-1"},
            "services": [{"name": "sp", "probes": [{"type": "http", "name": "a",
                                                     "url": "http://127.0.0.1:9/"}]}],
            "notifiers": [{"type": "pagerduty", "name": "pd", "routing_key": "k" * 32,
                           "url": str(server.make_url("/v2/enqueue"))}],
        }
    )  # fmt: skip
    d = Dispatcher(store, build_notifiers(settings.notifiers, session, clock), clock)
    try:
        herald = Herald(settings, store, clock, on_outbox=d.wake)
        inc, _ = herald.record(
            Incident(
                0, "sp", Severity.CRITICAL, IncidentState.OPEN, "unavailable", "", opened_at=T0
            ),
            "opened",
            notices=[Notice("trigger", "critical")],
        )
        incidents = Incidents(settings, store, clock, herald=herald)
        clock.advance(60)
        incidents.ack(inc.id, "alice")
        clock.advance(60)
        incidents.resolve(inc.id, "alice")
        assert await d.drain(10)
    finally:
        await d.close()
        await server.close()
    assert [e["event_action"] for e in got] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in got} == {f"availmon/sp/{inc.id}"}
    assert [i.state for i in store.outbox(inc.id)] == ["sent"] * 3
    assert [e.kind for e in store.events(inc.id)].count("notified") == 3
