"""The simulated platform, driven by real clients on loopback: each fault as the client sees
it and as the log records it, the control API, the ground truth and scenario timing."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
import pytest

from monitor.clock import FakeClock
from monitor.simulator import (
    DEFAULT_SCENARIO,
    FAULT_NAMES,
    ScenarioStep,
    Simulator,
    load_scenario,
    parse_attempt_id,
)
from monitor.simulator.faults import FAULTS, Act, parse_fault
from monitor.simulator.ledger import Ledger, attempt_vantage
from monitor.simulator.smtp import message_keys
from probes.base import Outcome

API_KEY = "test-api-key"
SMTP_PASSWORD = "test-smtp-password"
SECOND = 1_700_000_000
FROM = "probe@availmon.example"
TO = "probe@x.sink.sparkpostmail.com"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(api_key=API_KEY, smtp_password=SMTP_PASSWORD)
    await s.start()
    try:
        yield s
    finally:
        await asyncio.wait_for(s.stop(), 10)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=10),
    ) as session:
        yield session


async def api_call(
    http: aiohttp.ClientSession,
    sim: Simulator,
    attempt_id: str | None,
    *,
    method: str = "GET",
    path: str = "/api/v1/account",
    key: str = API_KEY,
    client_timeout: float = 10.0,
    body: Any = None,
) -> tuple[int | str, Any]:
    """(status, parsed JSON body) or (error class name, None)."""
    headers = {"Authorization": key}
    if attempt_id is not None:
        headers["X-Availmon-Attempt"] = attempt_id
    try:
        async with http.request(
            method,
            sim.http_url + path,
            headers=headers,
            json=body,
            timeout=aiohttp.ClientTimeout(total=client_timeout),
        ) as r:
            return r.status, await r.json(content_type=None)
    except TimeoutError:
        return "timeout", None
    except aiohttp.ClientError as e:
        return type(e).__name__, None


def message(attempt_id: str) -> bytes:
    # like the SMTP probe: ':' is not allowed in a Message-ID, so it becomes '_'
    safe = attempt_id.replace(":", "_")
    return (
        f"From: {FROM}\r\nTo: {TO}\r\nSubject: availmon probe\r\n"
        f"Message-ID: <{safe}@availmon>\r\nX-Availmon-Attempt: {safe}\r\n"
        f"X-Availmon-Vantage: test-vantage\r\n\r\navailmon probe attempt\r\n"
    ).encode()


async def smtp_send(
    sim: Simulator,
    attempt_id: str,
    *,
    password: str = SMTP_PASSWORD,
    client_timeout: float = 10.0,
    auth: bool = True,
) -> tuple[str, int | None, str]:
    """One injection over STARTTLS + AUTH, verifying the simulator's CA.

    Returns ("reply", code, text) for any SMTP reply that ended it, ("timeout", None, "") or
    ("disconnected", None, exception class).
    """
    assert sim.ca_file is not None
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=sim.smtp_port,
        start_tls=True,
        tls_context=ssl.create_default_context(cafile=str(sim.ca_file)),
        username="SMTP_Injection" if auth else None,
        password=password if auth else None,
        timeout=client_timeout,
    )
    try:
        await client.connect()
        _refused, reply = await client.sendmail(FROM, [TO], message(attempt_id))
        return "reply", 250, reply
    except aiosmtplib.SMTPRecipientsRefused as e:
        return "reply", e.recipients[0].code, e.recipients[0].message
    except aiosmtplib.SMTPResponseException as e:
        return "reply", e.code, e.message
    except aiosmtplib.SMTPTimeoutError:
        return "timeout", None, ""
    except (
        aiosmtplib.SMTPServerDisconnected,
        aiosmtplib.SMTPConnectError,
        ssl.SSLError,
        ConnectionError,
    ) as e:
        return "disconnected", None, type(e).__name__
    except aiosmtplib.SMTPException as e:
        return "error", None, str(e)
    finally:
        client.close()


def last(sim: Simulator, channel: str) -> Any:
    recs = [r for r in sim.log if r.channel == channel]
    assert recs, f"no {channel} record"
    return recs[-1]


# -- the platform API --------------------------------------------------------------------


async def test_api_answers_like_sparkpost(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body = await api_call(http, sim, f"acct:{SECOND}:0")
    assert status == 200 and "results" in body
    status, body = await api_call(
        http,
        sim,
        f"send:{SECOND}:0",
        method="POST",
        path="/api/v1/transmissions",
        body={"recipients": [{"address": TO}], "content": {"text": "x"}},
    )
    assert status == 200
    assert body["results"]["total_accepted_recipients"] == 1
    assert body["results"]["total_rejected_recipients"] == 0
    assert body["results"]["id"]
    status, body = await api_call(http, sim, None, path="/api/v1/nope")
    assert status == 404 and body["errors"][0]["message"]
    status, body = await api_call(http, sim, None, key="wrong")
    assert status == 401 and body["errors"][0]["message"]
    status, _ = await api_call(http, sim, None, method="DELETE")
    assert status == 405
    rec = sim.log[0]
    assert (rec.probe, rec.second, rec.slot, rec.expected) == ("acct", SECOND, 0, Outcome.OK)
    assert [r.expected for r in sim.log[2:]] == [Outcome.CLIENT_ERROR] * 3


API_FAULTS = [
    ("5xx", {}, 500, Outcome.SERVER_ERROR),
    ("5xx", {"status": 503}, 503, Outcome.SERVER_ERROR),
    ("4xx", {}, 401, Outcome.CLIENT_ERROR),
    ("4xx", {"status": 420}, 420, Outcome.CLIENT_ERROR),
    ("429", {}, 429, Outcome.CLIENT_ERROR),
    ("slow", {"delay": 0.05}, 200, Outcome.OK),
    ("slow", {"delay": 0.05, "timeout_at": 0.01}, 200, Outcome.TIMEOUT),
]


@pytest.mark.parametrize(
    ("fault", "params", "status", "expected"),
    API_FAULTS,
    ids=["500", "503", "401", "420", "429", "slow", "slow-past-timeout_at"],
)
async def test_api_fault_replies(
    sim: Simulator,
    http: aiohttp.ClientSession,
    fault: str,
    params: dict[str, Any],
    status: int,
    expected: Outcome,
) -> None:
    sim.set_fault("api", fault, **params)
    got, body = await api_call(http, sim, f"acct:{SECOND}:1")
    assert got == status
    if status != 200:
        assert body["errors"][0]["message"]
    rec = last(sim, "api")
    assert (rec.fault, rec.expected, rec.second) == (fault, expected, SECOND)


@pytest.mark.parametrize(
    ("fault", "method", "expected"),
    [
        ("reset", "GET", Outcome.SERVER_ERROR),
        ("drop_after_data", "POST", Outcome.SERVER_ERROR),
    ],
    ids=["reset", "drop_after_data"],
)
async def test_api_fault_without_reply(
    sim: Simulator, http: aiohttp.ClientSession, fault: str, method: str, expected: Outcome
) -> None:
    sim.set_fault("api", fault)
    path = "/api/v1/transmissions" if method == "POST" else "/api/v1/account"
    got, _ = await api_call(
        http,
        sim,
        f"acct:{SECOND}:0",
        method=method,
        path=path,
        body={"recipients": []} if method == "POST" else None,
    )
    assert got in ("ClientOSError", "ServerDisconnectedError")
    assert last(sim, "api").expected is expected


async def test_api_fraction_fails_first_of_each_pair(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_fault("api", "fraction", fraction=0.5, fault="5xx", status=503)
    got = [(await api_call(http, sim, f"acct:{SECOND + i // 2}:{i % 2}"))[0] for i in range(6)]
    assert got == [503, 200] * 3
    # a partial failure leaves no second unavailable
    assert sim.ground_truth()["api"] == set()


# -- SMTP --------------------------------------------------------------------------------


async def test_smtp_injection_over_starttls_and_auth(sim: Simulator) -> None:
    kind, code, _ = await smtp_send(sim, f"smtp:{SECOND}:0")
    assert (kind, code) == ("reply", 250)
    rec = last(sim, "smtp")
    assert (rec.probe, rec.second, rec.slot, rec.vantage) == ("smtp", SECOND, 0, "test-vantage")
    assert rec.expected is Outcome.OK


async def test_smtp_bad_password_and_mail_before_auth(sim: Simulator) -> None:
    kind, code, text = await smtp_send(sim, f"smtp:{SECOND}:0", password="wrong")
    assert (kind, code) == ("reply", 535) and text.startswith("5.7.8")
    kind, code, text = await smtp_send(sim, f"smtp:{SECOND}:0", auth=False)
    assert (kind, code) == ("reply", 530) and text.startswith("5.7.0")


SMTP_REPLIES: list[tuple[str, dict[str, Any], int, str, Outcome]] = [
    ("smtp_421", {}, 421, "4.3.3", Outcome.SERVER_ERROR),
    ("smtp_451", {}, 451, "4.3.0", Outcome.SERVER_ERROR),
    ("smtp_550", {}, 550, "5.7.1", Outcome.CLIENT_ERROR),
    ("smtp_554", {}, 554, "5.3.0", Outcome.SERVER_ERROR),
    ("5xx", {}, 451, "4.3.0", Outcome.SERVER_ERROR),
    ("4xx", {}, 550, "5.7.1", Outcome.CLIENT_ERROR),
    ("429", {}, 421, "4.7.0", Outcome.CLIENT_ERROR),
]


@pytest.mark.parametrize(
    ("fault", "params", "code", "enhanced", "expected"),
    SMTP_REPLIES,
    ids=[f"{f}-{c}" for f, _p, c, _e, _o in SMTP_REPLIES],
)
async def test_smtp_reply_faults_after_data(
    sim: Simulator,
    fault: str,
    params: dict[str, Any],
    code: int,
    enhanced: str,
    expected: Outcome,
) -> None:
    sim.set_fault("smtp", fault, **params)
    kind, got, text = await smtp_send(sim, f"smtp:{SECOND}:1")
    assert (kind, got) == ("reply", code)
    assert text.startswith(enhanced)
    rec = last(sim, "smtp")
    assert (rec.second, rec.expected, rec.reply) == (SECOND, expected, f"{code} {enhanced}")


@pytest.mark.parametrize(
    ("fault", "expected", "kind"),
    [
        ("reset", Outcome.SERVER_ERROR, "disconnected"),
        ("drop_after_data", Outcome.SERVER_ERROR, "disconnected"),
    ],
    ids=["reset", "drop_after_data"],
)
async def test_smtp_faults_without_reply_are_keyed(
    sim: Simulator, fault: str, expected: Outcome, kind: str
) -> None:
    sim.set_fault("smtp", fault)
    got, _, _ = await smtp_send(sim, f"smtp:{SECOND}:0")
    assert got == kind
    rec = last(sim, "smtp")
    assert (rec.second, rec.expected) == (SECOND, expected)
    assert sim.ground_truth()["smtp"] == {SECOND}


@pytest.mark.parametrize(
    ("fault", "params", "kind", "code"),
    [
        ("smtp_421", {"stage": "banner"}, "reply", 421),
        ("smtp_550", {"stage": "rcpt"}, "reply", 550),
        ("smtp_451", {"stage": "mail"}, "reply", 451),
        ("4xx", {"stage": "ehlo"}, "reply", 550),
        ("tls_fail", {}, "disconnected", None),
    ],
    ids=["421-banner", "550-rcpt", "451-mail", "550-ehlo", "tls_fail"],
)
async def test_smtp_early_stage_faults_are_unkeyed(
    sim: Simulator, fault: str, params: dict[str, Any], kind: str, code: int | None
) -> None:
    sim.set_fault("smtp", fault, **params)
    got, got_code, _ = await smtp_send(sim, f"smtp:{SECOND}:0")
    assert (got, got_code) == (kind, code)
    rec = last(sim, "smtp")
    assert rec.attempt_id is None and not rec.keyed
    assert rec.fault == fault
    assert sim.ground_truth()["smtp"] == set()


async def test_stop_returns_with_hung_connections(sim: Simulator) -> None:
    sim.set_fault("both", "hang")
    async with aiohttp.ClientSession() as session:
        api = asyncio.create_task(api_call(session, sim, f"acct:{SECOND}:0", client_timeout=60))
        smtp = asyncio.create_task(smtp_send(sim, f"smtp:{SECOND}:0", client_timeout=60))
        for _ in range(200):  # bounded: both attempts reached their hang
            if {r.channel for r in sim.log} == {"api", "smtp"}:
                break
            await asyncio.sleep(0.02)
        assert {r.fault for r in sim.log} == {"hang"}
        # the fixture's timeout (10 s) is only a bound against a hung test, not a measurement
        await asyncio.wait_for(sim.stop(), 10)
        # aiohttp may retry the GET once after the disconnect, and find the listener closed
        assert (await api)[0] in (
            "ServerDisconnectedError",
            "ClientOSError",
            "ClientConnectorError",
        )
        assert (await smtp)[0] == "disconnected"


async def test_plain_smtp_and_no_control_api() -> None:
    async with Simulator(tls=False, smtp_password=SMTP_PASSWORD, control=False) as plain:
        assert plain.ca_file is None
        with pytest.raises(ValueError, match="tls=True"):
            plain.set_fault("smtp", "tls_fail")
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=plain.smtp_port,
            start_tls=False,
            username="SMTP_Injection",
            password=SMTP_PASSWORD,
            timeout=10,
        )
        try:
            await client.connect()
            _refused, reply = await client.sendmail(FROM, [TO], message(f"smtp:{SECOND}:0"))
        finally:
            client.close()
        assert reply.startswith("2.0.0") and plain.log[-1].expected is Outcome.OK
        async with aiohttp.ClientSession() as session:
            async with session.get(plain.http_url + "/_sim/state") as r:
                assert r.status == 404  # an unknown platform path, not the control API
        assert plain.log[-1].channel == "api"


# -- control API -------------------------------------------------------------------------


async def test_control_api(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = sim.http_url + "/_sim/"
    async with http.post(
        url + "fault", json={"channel": "api", "fault": "5xx", "status": 503}
    ) as r:
        assert r.status == 200
        assert (await r.json())["faults"]["api"] == {"fault": "5xx", "params": {"status": 503}}
    assert sim.fault("api") == {"fault": "5xx", "params": {"status": 503}}
    await api_call(http, sim, f"acct:{SECOND}:0")
    await api_call(http, sim, f"acct:{SECOND}:1")
    async with http.get(url + "state") as r:
        state = await r.json()
    assert state["counts"]["api"]["server_error"] == 2
    assert state["smtp"]["port"] == sim.smtp_port
    assert set(state["known_faults"]) == set(FAULT_NAMES)
    async with http.get(url + "log", params={"since": "1"}) as r:
        page = await r.json()
    assert [rec["attempt_id"] for rec in page["records"]] == [f"acct:{SECOND}:1"]
    assert page["next"] == 2
    async with http.get(url + "truth", params={"start": str(SECOND), "end": str(SECOND + 1)}) as r:
        assert await r.json() == {"api": [SECOND], "smtp": [], "service": [SECOND]}
    async with http.post(
        url + "fault", json={"channel": "both", "fault": "fraction", "inner": "hang"}
    ) as r:
        assert r.status == 200
    assert sim.fault("smtp")["params"] == {"fraction": 0.5, "fault": "hang", "stage": "data"}


BAD_CONTROL = [
    ("POST", "fault", b"{not json"),
    ("POST", "fault", b"[1, 2]"),
    ("POST", "fault", json.dumps({"channel": "api"}).encode()),
    ("POST", "fault", json.dumps({"channel": "web", "fault": "5xx"}).encode()),
    ("POST", "fault", json.dumps({"channel": "api", "fault": "melt"}).encode()),
    ("POST", "fault", json.dumps({"channel": "api", "fault": "5xx", "status": 404}).encode()),
    ("POST", "fault", json.dumps({"channel": "api", "fault": "5xx", "colour": 1}).encode()),
    ("POST", "fault", json.dumps({"channel": "api", "fault": "smtp_421"}).encode()),
    ("POST", "fault", json.dumps({"channel": "api", "fault": "fraction", "inner": [1]}).encode()),
    ("GET", "log?since=yesterday", b""),
    ("GET", "log?limit=0", b""),
    ("GET", "truth?start=x", b""),
]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    BAD_CONTROL,
    ids=[
        "not-json",
        "not-object",
        "no-fault",
        "bad-channel",
        "unknown-fault",
        "status-range",
        "unknown-param",
        "smtp-fault-on-api",
        "inner-not-a-name",
        "since-not-int",
        "limit-zero",
        "start-not-int",
    ],
)
async def test_control_api_rejects_bad_input(
    sim: Simulator, http: aiohttp.ClientSession, method: str, path: str, body: bytes
) -> None:
    async with http.request(method, f"{sim.http_url}/_sim/{path}", data=body) as r:
        assert r.status == 400
        message = (await r.json())["errors"][0]["message"]
    assert message and "\n" not in message
    assert sim.fault("api")["fault"] == "ok"
    async with http.get(f"{sim.http_url}/_sim/state") as r:  # still serving
        assert r.status == 200
    async with http.get(f"{sim.http_url}/_sim/nothing") as r:
        assert r.status == 404


# -- faults, ground truth and ids --------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "fault", "params", "needle"),
    [
        ("web", "5xx", {}, "channel"),
        ("api", "melt", {}, "unknown fault"),
        ("api", "5xx", {"status": 404}, "status"),
        ("api", "4xx", {"status": "x"}, "status"),
        ("api", "tls_fail", {}, "api channel"),
        ("both", "smtp_554", {}, "api channel"),
        ("api", "hang", {"stage": "rcpt"}, "smtp channel only"),
        ("smtp", "hang", {"stage": "quit"}, "stage"),
        ("api", "fraction", {"fraction": 0}, "fraction"),
        ("api", "fraction", {"fault": "ok"}, "inner"),
        ("api", "slow", {"delay": -1}, "delay"),
    ],
    ids=[
        "channel",
        "fault",
        "status-range",
        "status-type",
        "tls_fail-api",
        "smtp-on-both",
        "stage-api",
        "stage-unknown",
        "fraction-zero",
        "fraction-inner-ok",
        "slow-negative",
    ],
)
def test_parse_fault_rejects(channel: str, fault: str, params: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle) as err:
        parse_fault(channel, fault, params)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("fraction", "pattern"),
    [(0.5, "FPFPFP"), (1 / 3, "FPPFPP"), (1.0, "FFFFFF"), (0.25, "FPPPFP")],
    ids=["half", "third", "all", "quarter"],
)
def test_fraction_is_deterministic_by_arrival(fraction: float, pattern: str) -> None:
    active = parse_fault("api", "fraction", {"fraction": fraction})["api"]
    decided = [active.decide("request") for _ in pattern]
    got = "".join("F" if d is not None and d.act is Act.REPLY else "P" for d in decided)
    assert got == pattern
    assert active.decide("elsewhere") is None


def test_ground_truth_counts_only_seconds_where_every_keyed_attempt_qualifies() -> None:
    ledger = Ledger(max_log=4)
    a, b, c, d, e = range(SECOND, SECOND + 5)
    rows = [
        ("api", f"acct:{a}:0", Outcome.SERVER_ERROR),
        ("api", f"acct:{a}:1", Outcome.SERVER_ERROR),  # a: all fail → unavailable
        ("api", f"acct:{b}:0", Outcome.SERVER_ERROR),
        ("api", f"acct:{b}:1", Outcome.OK),  # b: partial failure → available
        ("api", f"acct:{c}:0", Outcome.CLIENT_ERROR),
        ("api", f"acct:{c}:1", Outcome.CLIENT_ERROR),  # c: 401s → not the platform's outage
        ("api", f"acct:{d}:0", Outcome.TIMEOUT),
        ("api", f"send:{d}:0", Outcome.SERVER_ERROR),  # d: two probes, both qualifying
        ("api", None, Outcome.SERVER_ERROR),  # unkeyed: no second to blame
        ("api", "garbage", Outcome.SERVER_ERROR),
        ("smtp", f"smtp_{e}_0", Outcome.TIMEOUT),  # e: SMTP only (the probe's '_' form)
        ("smtp", f"smtp_{a}_0", Outcome.OK),
    ]
    for channel, aid, outcome in rows:
        ledger.record(channel, aid, None, 0.0, "x", "r", outcome)
    truth = ledger.truth()
    assert truth == {"api": {a, d}, "smtp": {e}, "service": {a, d, e}}
    assert ledger.truth(start=b, end=e) == {"api": {d}, "smtp": set(), "service": {d}}
    # the log is bounded, the truth is not
    assert len(ledger.log) <= 4 and ledger.log[-1].seq == len(rows)
    assert [r.seq for r in ledger.since(len(rows) - 2, 10)] == [len(rows) - 1, len(rows)]


def test_ground_truth_counts_a_resent_attempt_once_by_its_last_arrival() -> None:
    ledger = Ledger()
    a, b, c = SECOND, SECOND + 1, SECOND + 2
    rows = [
        (f"acct:{a}:0", "v1", Outcome.SERVER_ERROR),
        (f"acct:{a}:0", "v1", Outcome.OK),  # a: the re-sent request succeeded
        (f"acct:{b}:0", "v1", Outcome.SERVER_ERROR),
        (f"acct:{b}:0", "v1", Outcome.SERVER_ERROR),  # b: failed twice, still one attempt
        (f"acct:{c}:0", "v1", Outcome.SERVER_ERROR),
        (f"acct:{c}:0", "v2", Outcome.OK),  # c: the same id from another vantage point
    ]
    for aid, vantage, outcome in rows:
        ledger.record("api", aid, vantage, 0.0, "x", "r", outcome)
    assert ledger.truth()["api"] == {b}
    assert len(ledger.log) == len(rows)  # the log keeps every arrival


@pytest.mark.parametrize(
    ("attempt_id", "parsed"),
    [
        ("acct:1700000000:1", ("acct", 1700000000, 1)),
        ("eu.api:primary:1700000000:0", ("eu.api:primary", 1700000000, 0)),
        ("smtp_main_1700000000_1", ("smtp_main", 1700000000, 1)),
        ("acct:1700000000:1@eu-1", ("acct", 1700000000, 1)),
        ("smtp_main_1700000000_1=eu-1", ("smtp_main", 1700000000, 1)),
        ("acct:1700000000:1@7", ("acct", 1700000000, 1)),
        ("acct:soon:1", None),
        ("", None),
        ("1700000000:1", None),
        ("acct:1700000000:1@", None),
        ("acct:1700000000:1@a b", None),
    ],
    ids=[
        "plain",
        "colons-in-probe",
        "underscored",
        "vantage",
        "vantage-in-message-id",
        "digit-vantage",
        "not-a-second",
        "empty",
        "no-probe",
        "empty-vantage",
        "bad-vantage",
    ],
)
def test_parse_attempt_id(attempt_id: str, parsed: tuple[str, int, int] | None) -> None:
    assert parse_attempt_id(attempt_id) == parsed


@pytest.mark.parametrize(
    ("attempt_id", "vantage"),
    [
        ("acct:1700000000:1@eu-1", "eu-1"),
        ("smtp_main_1700000000_1=us.east_2", "us.east_2"),
        ("acct:1700000000:1", None),
        ("nonsense@eu-1", None),
    ],
)
def test_attempt_vantage(attempt_id: str, vantage: str | None) -> None:
    assert attempt_vantage(attempt_id) == vantage


def test_ids_of_two_vantages_are_two_attempts_and_name_their_vantage() -> None:
    """Vantages send the same probe:second:slot, each with its own @vantage: the ledger
    keeps both and says whose each was, without an X-Availmon-Vantage header."""
    ledger = Ledger()
    b = 1_700_000_100
    ledger.record("api", f"acct:{b}:0@v2", None, 0.0, "x", "r", Outcome.OK)
    ledger.record("api", f"acct:{b}:0@v1", None, 0.0, "x", "r", Outcome.SERVER_ERROR)
    assert [r.vantage for r in ledger.log] == ["v2", "v1"]
    # v1's 5xx is its own attempt, not a repeat of v2's that would replace its ok
    assert ledger.truth()["api"] == set()
    ledger.record("api", f"acct:{b}:1@v3", "header-wins", 0.0, "x", "r", Outcome.OK)
    assert ledger.log[-1].vantage == "header-wins"


def test_message_keys_fall_back_to_message_id() -> None:
    assert message_keys(message(f"p:{SECOND}:1")) == (f"p_{SECOND}_1", "test-vantage")
    only_id = b"Subject: x\r\nMessage-ID: <p_1_0@availmon>\r\n\r\nX-Availmon-Attempt: body\r\n"
    assert message_keys(only_id) == ("p_1_0", None)


def test_expected_outcomes_agree_with_the_probe_classifier() -> None:
    classify = pytest.importorskip("probes.classify")
    for name, spec in FAULTS.items():
        for channel in spec.channels:
            action = parse_fault(channel, name, {})[channel].action
            if action.act is not Act.REPLY:
                continue
            if action.smtp:
                enhanced = classify.parse_enhanced(action.text[4:])
                got = classify.smtp_default(action.status, enhanced)
            else:
                got = classify.http_status(action.status, frozenset(range(200, 300)), {})
            assert got is action.expected, (name, channel)


# -- scenarios ---------------------------------------------------------------------------


def test_default_scenario_is_valid_and_on_whole_seconds() -> None:
    for step in DEFAULT_SCENARIO:
        parse_fault(step.channel, step.fault, step.params)
        assert step.at == int(step.at)
    ats = [s.at for s in DEFAULT_SCENARIO]
    assert ats == sorted(ats)
    kinds = {(s.channel, s.fault) for s in DEFAULT_SCENARIO}
    assert {("api", "5xx"), ("smtp", "hang"), ("api", "fraction"), ("api", "4xx")} <= kinds
    assert {"ok", "5xx", "hang", "fraction", "4xx"} <= set(FAULT_NAMES)


def test_load_scenario(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[[step]]\nat = 3\nchannel = "api"\nfault = "fraction"\nfraction = 0.5\ninner = "5xx"\n'
        '[[step]]\nat = 0\nchannel = "smtp"\nfault = "smtp_421"\nnote = "x"\n'
        '[step.params]\nstage = "banner"\n'
    )
    steps = load_scenario(path)
    assert steps == [
        ScenarioStep(0.0, "smtp", "smtp_421", {"stage": "banner"}, "x"),
        ScenarioStep(3.0, "api", "fraction", {"fraction": 0.5, "inner": "5xx"}),
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[step]\n", "not valid TOML"),
        ('[[step]]\nchannel = "api"\nfault = "ok"\n', "'at'"),
        ('[[step]]\nat = -1\nchannel = "api"\nfault = "ok"\n', "at=-1"),
        ('[[step]]\nat = 1\nchannel = "api"\nfault = "melt"\n', "step 1: unknown fault"),
        ('[[step]]\nat = 1\nchannel = "api"\nfault = "5xx"\nstatus = 200\n', "status"),
        ("title = 'x'\n", "unknown key"),
        ("", "no \\[\\[step\\]\\]"),
    ],
    ids=["toml", "missing-at", "negative-at", "unknown-fault", "bad-param", "extra-key", "empty"],
)
def test_load_scenario_rejects(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=needle) as err:
        load_scenario(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


async def until(predicate: Any, what: str) -> None:
    for _ in range(100):  # bounded: 100 × 20 ms of real time
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def test_run_scenario_follows_the_clock() -> None:
    clock = FakeClock(start=SECOND - 0.5)
    sim = Simulator(clock=clock)  # faults and scenarios need no listener
    steps = [
        ScenarioStep(0, "both", "ok"),
        ScenarioStep(5, "api", "ok", note="recovered"),
        ScenarioStep(2, "api", "5xx", {"status": 503}),
    ]
    task = asyncio.create_task(sim.run_scenario(steps, start_at=SECOND))
    await asyncio.sleep(0.15)
    assert sim.applied == []  # fake time has not reached the start
    clock.advance(0.5)
    await until(lambda: len(sim.applied) == 1, "step at 0")
    clock.advance(1.9)
    await asyncio.sleep(0.15)
    assert sim.fault("api")["fault"] == "ok"
    clock.advance(0.1)
    await until(lambda: sim.fault("api")["fault"] == "5xx", "step at 2")
    clock.advance(3.0)
    await asyncio.wait_for(task, 5)
    assert sim.fault("api") == {"fault": "ok", "params": {}}
    assert [(t - SECOND, s.at) for t, s in sim.applied] == [(0, 0), (2, 2), (5, 5)]


async def test_default_scenario_yields_its_documented_ground_truth() -> None:
    """The demo's script, second by second on a FakeClock, with two keyed attempts per
    channel and second decided by the simulator's own fault logic."""
    clock = FakeClock(start=SECOND)
    sim = Simulator(clock=clock)
    task = asyncio.create_task(sim.run_scenario(DEFAULT_SCENARIO, start_at=SECOND))
    for offset in range(60):
        clock.set_wall(SECOND + offset + 0.01)
        due = sum(1 for step in DEFAULT_SCENARIO if step.at <= offset)
        await until(lambda due=due: len(sim.applied) == due, f"steps due at {offset}")
        for slot in (0, 1):
            for channel, stage in (("api", "request"), ("smtp", "data")):
                active = sim.faults[channel]
                action = active.decide(stage)
                expected = action.expected if action is not None else Outcome.OK
                sim.record(channel, f"p:{SECOND + offset}:{slot}", None, active.name, "", expected)
    await asyncio.wait_for(task, 5)
    truth = sim.ground_truth(SECOND, SECOND + 60)
    api = {SECOND + s for s in range(8, 14)}
    smtp = {SECOND + s for s in range(20, 26)}
    assert truth == {"api": api, "smtp": smtp, "service": api | smtp}
    # the partial failure and the 401 spell happened, and did not count
    assert sim.ledger.counts["api"]["server_error"] == 12 + 6
    assert sim.ledger.counts["api"]["client_error"] == 10


async def test_serve_prints_its_addresses_and_runs_a_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from monitor.simulator import serve

    steps = [ScenarioStep(0, "api", "5xx", {"status": 503})]
    task = asyncio.create_task(serve("127.0.0.1", 0, 0, api_key=API_KEY, scenario=steps))
    try:
        out = ""
        for _ in range(250):  # bounded: the line is printed once both listeners are up
            out += capsys.readouterr().out
            if out:
                break
            await asyncio.sleep(0.02)
        assert out.count("\n") == 1 and "STARTTLS" in out and API_KEY not in out
        url = out.split("api ", 1)[1].split(",", 1)[0]
        async with aiohttp.ClientSession() as session:
            for _ in range(150):  # bounded: the scenario starts at the next whole second
                async with session.get(url + "/_sim/state") as r:
                    state = await r.json()
                if state["faults"]["api"]["fault"] == "5xx":
                    break
                await asyncio.sleep(0.02)
            assert state["faults"]["api"] == {"fault": "5xx", "params": {"status": 503}}
            async with session.get(url + "/api/v1/account") as r:
                assert r.status == 503
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def test_run_scenario_rejects_a_bad_step_before_starting() -> None:
    sim = Simulator(clock=FakeClock(start=SECOND))
    steps = [ScenarioStep(0, "api", "5xx"), ScenarioStep(1, "api", "melt")]
    with pytest.raises(ValueError, match="melt"):
        await sim.run_scenario(steps, start_at=SECOND)
    assert sim.fault("api")["fault"] == "ok"


# -- the real probes agree with the simulator's expected outcomes ------------------------

E2E_API: list[tuple[str, dict[str, Any]]] = [
    ("ok", {}),
    ("5xx", {"status": 503}),
    ("4xx", {}),
    ("429", {}),
    ("hang", {}),
    ("reset", {}),
    ("drop_after_data", {}),
    ("slow", {"delay": 0.05}),
    # aiohttp re-sends an idempotent GET once after a reset: whatever the client ends with,
    # the simulator's last record of that attempt says the same
    ("fraction", {"fraction": 0.5, "fault": "reset"}),
]
E2E_SMTP: list[tuple[str, dict[str, Any]]] = [
    ("ok", {}),
    ("smtp_421", {}),
    ("smtp_451", {}),
    ("smtp_550", {}),
    ("smtp_554", {}),
    ("5xx", {}),
    ("4xx", {}),
    ("429", {}),
    ("hang", {}),
    ("reset", {}),
    ("drop_after_data", {}),
    ("tls_fail", {}),
    ("smtp_421", {"stage": "banner"}),
    ("hang", {"stage": "mail"}),
    ("reset", {"stage": "ehlo"}),
    ("smtp_550", {"stage": "rcpt"}),
]


def _ctx(attempt_id: str, timeout: float) -> Any:
    from probes.base import ProbeContext

    return ProbeContext(attempt_id, SECOND, 0, deadline=0.0, timeout=timeout)


def _case_id(fault: str, params: dict[str, Any]) -> str:
    return "-".join([fault, *map(str, params.values())])


@pytest.mark.parametrize(
    ("fault", "params"),
    E2E_API,
    ids=[_case_id(f, p) for f, p in E2E_API],
)
async def test_http_probe_sees_what_the_simulator_expects(
    sim: Simulator, fault: str, params: dict[str, Any]
) -> None:
    from probes.http import HttpProbe, HttpProbeConfig

    # a hang is waited out by the probe: long enough for a loaded machine's request to
    # reach the hang, short enough for a quick test; the other faults end at once
    timeout = 0.6 if fault == "hang" else 10.0
    method = "POST" if fault == "drop_after_data" else "GET"
    path = "/api/v1/transmissions" if method == "POST" else "/api/v1/account"
    probe = HttpProbe(
        HttpProbeConfig.model_validate(
            {
                "name": "acct",
                "url": sim.http_url + path,
                "method": method,
                "timeout_seconds": timeout,
                "headers": {"Authorization": API_KEY},
                "body": '{"recipients": [{"address": "x@y"}]}',
            }
        ),
        FakeClock(),
    )
    sim.set_fault("api", fault, **params)
    try:
        result = await probe.run(_ctx(f"acct:{SECOND}:0", timeout))
    finally:
        await probe.close()
    rec = last(sim, "api")
    assert rec.second == SECOND
    assert result.outcome is rec.expected, result.detail


@pytest.mark.parametrize(
    ("fault", "params"),
    E2E_SMTP,
    ids=[_case_id(f, p) for f, p in E2E_SMTP],
)
async def test_smtp_probe_sees_what_the_simulator_expects(
    sim: Simulator, fault: str, params: dict[str, Any]
) -> None:
    from probes.smtp import SmtpProbe, SmtpProbeConfig

    timeout = 1.0 if fault == "hang" else 10.0
    probe = SmtpProbe(
        SmtpProbeConfig.model_validate(
            {
                "name": "inject",
                "host": "127.0.0.1",
                "port": sim.smtp_port,
                "ca_file": sim.ca_file,
                "username": "SMTP_Injection",
                "password": SMTP_PASSWORD,
                "ehlo_name": "probe.example",
                "timeout_seconds": timeout,
            }
        ),
        FakeClock(),
    )
    sim.set_fault("smtp", fault, **params)
    try:
        result = await probe.run(_ctx(f"inject:{SECOND}:0", timeout))
    finally:
        await probe.close()
    rec = last(sim, "smtp")
    assert rec.keyed is (params.get("stage", "data") == "data" and fault != "tls_fail")
    assert result.outcome is rec.expected, result.detail
