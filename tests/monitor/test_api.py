"""The HTTP API and the CLI against a real store: reads, token-guarded writes, bad input.

The daemon is not started (no probes run): the API only reads the store and acts through
`Incidents`, so a store filled by hand is enough here; tests/monitor/test_daemon.py runs
the whole daemon.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alerting.incidents import Incidents
from alerting.model import IncidentState, Severity
from monitor.api import make_app
from monitor.cli import main
from monitor.clock import FakeClock
from monitor.config import load
from monitor.daemon import Daemon
from monitor.store import open_store
from monitor.store.base import Incident, Store
from monitor.verdicts import SecondVerdict, Verdict

T0 = 1_795_000_000  # 2026-11-18T11:06:40Z


def _config(tmp_path: Path, token: bool) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        (
            '[monitor]\nvantage = "v1"\napi_token = "env:AVAILMON_T"\n'
            if token
            else '[monitor]\nvantage = "v1"\n'
        )
        + f'[store]\nurl = "sqlite:///{tmp_path}/a.db"\n'
        '[[services]]\nname = "svc"\n[[services.probes]]\ntype = "http"\nname = "api"\n'
        'url = "http://127.0.0.1:9/"\n[[services.probes]]\ntype = "smtp"\nname = "smtp"\n'
        'host = "127.0.0.1"\n'
    )
    return path


def _seed(store: Store) -> int:
    verdicts = []
    for t in range(T0, T0 + 10):
        api = Verdict.UNAVAILABLE if T0 + 3 <= t < T0 + 6 else Verdict.AVAILABLE
        for ch, v in (("api", api), ("smtp", Verdict.AVAILABLE), ("service", api)):
            verdicts.append(SecondVerdict("svc", ch, t, v, "v1"))
    store.write_verdicts(verdicts)
    inc = store.create_incident(
        Incident(
            0,
            "svc",
            Severity.CRITICAL,
            IncidentState.OPEN,
            "unavailable",
            "",
            opened_at=T0 + 6.0,
            first_unavailable=T0 + 3,
            last_unavailable=T0 + 5,
            unavailable_seconds=3,
            ack_due_at=T0 + 906.0,
        )
    )
    return inc.id


@pytest.fixture
async def api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[TestClient, int, Path]]:
    monkeypatch.setenv("AVAILMON_T", "tok")
    cfg = _config(tmp_path, token=True)
    settings = load(cfg)
    clock = FakeClock(T0 + 20)
    d = Daemon(settings, clock=clock, store=open_store(settings.store.url))
    assert d.store is not None
    incident_id = _seed(d.store)
    d.incidents = Incidents(settings, d.store, clock)
    async with TestClient(TestServer(make_app(d))) as client:
        yield client, incident_id, cfg
    d.store.close()


AUTH = {"Authorization": "Bearer tok"}


async def test_seconds_accept_epoch_and_iso(api: tuple[TestClient, int, Path]) -> None:
    client, _, _ = api
    r = await client.get("/api/v1/seconds", params={"from": str(T0 + 2), "to": str(T0 + 7)})
    assert r.status == 200
    rows = (await r.json())["seconds"]
    assert [x["api"] for x in rows] == ["available"] + ["unavailable"] * 3 + ["available"]
    assert rows[0] == {"t": T0 + 2, "verdict": "available", "api": "available", "smtp": "available"}
    r = await client.get(
        "/api/v1/seconds", params={"from": "2026-11-18T11:06:43Z", "to": "2026-11-18T11:06:46Z"}
    )
    assert [x["verdict"] for x in (await r.json())["seconds"]] == ["unavailable"] * 3


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"service": "nope"}, "service"),
        ({"from": "soon"}, "from"),
        ({"from": str(T0 + 5), "to": str(T0)}, "to"),
        ({"from": "0", "to": str(30 * 86400)}, "range"),
    ],
    ids=["unknown-service", "bad-time", "reversed", "too-long"],
)
async def test_seconds_bad_input_is_400_with_one_line(
    api: tuple[TestClient, int, Path], params: dict[str, str], fragment: str
) -> None:
    client, _, _ = api
    r = await client.get("/api/v1/seconds", params=params)
    assert r.status == 400
    error = (await r.json())["error"]
    assert fragment in error and "\n" not in error


async def test_incident_lifecycle_through_the_api(api: tuple[TestClient, int, Path]) -> None:
    client, ident, _ = api
    r = await client.get("/api/v1/incidents", params={"severity": "critical"})
    assert [i["id"] for i in (await r.json())["incidents"]] == [ident]
    assert (await client.post(f"/api/v1/incidents/{ident}/ack")).status == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.post(f"/api/v1/incidents/{ident}/ack", headers=bad)).status == 401
    r = await client.post(f"/api/v1/incidents/{ident}/ack", headers=AUTH, json={"by": "alice"})
    assert r.status == 200
    shown = await r.json()
    assert shown["incident"]["state"] == "acknowledged"
    assert shown["incident"]["acknowledged_by"] == "alice"
    r = await client.post(f"/api/v1/incidents/{ident}/ack", headers=AUTH, json={"by": "bob"})
    assert r.status == 409
    r = await client.post(
        f"/api/v1/incidents/{ident}/notes", headers=AUTH, json={"by": "alice", "text": "RCA"}
    )
    assert r.status == 200
    r = await client.post(
        f"/api/v1/incidents/{ident}/resolve",
        headers=AUTH,
        json={"by": "alice", "note": "agreed with the customer"},
    )
    assert r.status == 200
    r = await client.get(f"/api/v1/incidents/{ident}")
    body = await r.json()
    assert body["incident"]["state"] == "resolved"
    kinds = [e["kind"] for e in body["timeline"]]
    assert "acknowledged" in kinds and "note" in kinds and "resolved" in kinds
    assert "tok" not in json.dumps(body)
    assert (await client.get("/api/v1/incidents/999")).status == 404
    assert (await client.get("/api/v1/incidents/abc")).status == 400
    r = await client.post(f"/api/v1/incidents/{ident}/ack", headers=AUTH, data=b"{not json")
    assert r.status == 400


async def test_maintenance_windows_through_the_api(api: tuple[TestClient, int, Path]) -> None:
    client, _, _ = api
    window = {
        "service": "svc",
        "start": "2026-12-06T02:00:00Z",
        "end": "2026-12-06T03:00:00Z",
        "reason": "announced",
    }
    assert (await client.post("/api/v1/maintenance", json=window)).status == 401
    r = await client.post("/api/v1/maintenance", json=window, headers=AUTH)
    assert r.status == 201
    created = await r.json()
    assert created["end"] - created["start"] == 3600 and created["warnings"] == []
    listed = (await (await client.get("/api/v1/maintenance")).json())["maintenance"]
    assert [w["id"] for w in listed] == [created["id"]]
    r = await client.post(
        "/api/v1/maintenance", headers=AUTH, json={**window, "start": "2026-12-06T02:30:00"}
    )
    assert r.status == 400 and "UTC offset" in (await r.json())["error"]
    r = await client.post(
        "/api/v1/maintenance",
        headers=AUTH,
        json={**window, "service": "*", "start": "2026-12-06T02:30:00+00:00"},
    )
    overlapping = await r.json()
    assert r.status == 201
    assert overlapping["warnings"][0].startswith(f"overlaps maintenance window {created['id']}")
    assert (
        await client.delete(f"/api/v1/maintenance/{overlapping['id']}", headers=AUTH)
    ).status == 200
    r = await client.post(
        "/api/v1/maintenance", headers=AUTH, json={**window, "end": "2026-12-06T01:00:00Z"}
    )
    assert r.status == 400
    assert (await client.delete(f"/api/v1/maintenance/{created['id']}", headers=AUTH)).status == 200
    assert (await client.delete(f"/api/v1/maintenance/{created['id']}", headers=AUTH)).status == 404


async def test_report_formats(api: tuple[TestClient, int, Path]) -> None:
    client, _, _ = api
    r = await client.get("/api/v1/reports/2026-11", params={"format": "json"})
    assert r.status == 200
    report = await r.json()
    assert report["service"] == "svc" and report["unavailable_seconds"]["service"] == 3
    # the digest is of the JSON as served: a reader recomputes it from the body alone
    from monitor.reports.seal import digest_of

    assert report["digest"]["value"] == digest_of(report) and report["signature"] is None
    assert report["method"]["probes"][0]["name"]
    r = await client.get("/api/v1/reports/2026-11", params={"format": "csv"})
    assert r.status == 200 and r.content_type == "text/csv"
    assert (await client.get("/api/v1/reports/2026-11", params={"format": "pdf"})).status == 400
    # a month the store holds nothing of: refused in one line, not a 100 % report
    r = await client.get("/api/v1/reports/2026-06", params={"format": "json"})
    assert r.status == 400
    assert (await r.json())["error"] == "no second of svc is stored for 2026-06: nothing to report"


async def test_writes_are_off_without_a_token(tmp_path: Path) -> None:
    settings = load(_config(tmp_path, token=False))
    d = Daemon(settings, clock=FakeClock(T0), store=open_store(settings.store.url))
    assert d.store is not None
    ident = _seed(d.store)
    d.incidents = Incidents(settings, d.store, d.clock)
    async with TestClient(TestServer(make_app(d))) as client:
        r = await client.post(f"/api/v1/incidents/{ident}/ack", headers=AUTH)
        assert r.status == 403
        assert "api_token" in (await r.json())["error"]
    d.store.close()


def test_cli_incidents_and_maintenance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVAILMON_T", "tok")
    cfg = str(_config(tmp_path, token=True))
    store = open_store(load(cfg).store.url)
    ident = _seed(store)
    store.close()
    assert main(["incidents", "-c", cfg, "list"]) == 0
    assert f"{ident:>5}  svc" in capsys.readouterr().out
    assert main(["incidents", "-c", cfg, "ack", str(ident), "--by", "carol"]) == 0
    assert main(["incidents", "-c", cfg, "ack", str(ident), "--by", "carol"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("availmon: error:") and err.count("\n") == 1
    assert main(["incidents", "-c", cfg, "show", "4242"]) == 2
    assert "no incident 4242" in capsys.readouterr().err
    assert (
        main(["incidents", "-c", cfg, "resolve", str(ident), "--by", "carol", "--note", "fixed"])
        == 0
    )
    capsys.readouterr()
    assert main(["incidents", "-c", cfg, "show", str(ident)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Critical Issue #{ident} — svc — resolved")
    assert "by carol" in text and "timeline:" in text and "\\u" not in text
    assert main(["incidents", "-c", cfg, "show", str(ident), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["incident"]["state"] == "resolved"
    assert (
        main(
            [
                "maintenance",
                "-c",
                cfg,
                "add",
                "--service",
                "svc",
                "--start",
                "2026-12-06T02:00Z",
                "--end",
                "2026-12-06T03:00Z",
                "--reason",
                "x",
            ]
        )
        == 0
    )
    capsys.readouterr()
    # a time without its UTC offset is refused; an overlapping window is warned about
    for start in ("2026-12-06T02:30", "2026-12-06T02:30+00:00"):
        code = main(
            ["maintenance", "-c", cfg, "add", "--start", start, "--end", "2026-12-06T04:00Z"]
        )
        out = capsys.readouterr()
        if start.endswith("+00:00"):
            assert code == 0
            assert out.err.startswith("availmon: warning: overlaps maintenance window")
        else:
            assert code == 2 and "UTC offset" in out.err and out.err.count("\n") == 1
    assert main(["maintenance", "-c", cfg, "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split()[:3] == ["ID", "SERVICE", "START"]
    assert "2026-12-06T02:00:00+00:00" in listed[1]
    assert (
        main(["maintenance", "-c", cfg, "add", "--service", "nope", "--start", "1", "--end", "2"])
        == 2
    )
    assert main(["maintenance", "-c", cfg, "remove", "99"]) == 2
    assert main(["report", "-c", cfg, "--month", "2026-11", "--format", "md"]) == 0
    assert "svc" in capsys.readouterr().out


HOSTILE: list[tuple[str, str, dict[str, Any], Any, int]] = [
    # (method, path, query, JSON body or raw bytes, expected status)
    ("GET", "/api/v1/seconds", {"service": "svc", "from": "9" * 400}, None, 400),
    ("GET", "/api/v1/seconds", {"service": "svc", "from": "1e20"}, None, 400),
    ("GET", "/api/v1/seconds", {"service": "svc", "from": "-1e20"}, None, 400),
    ("GET", "/api/v1/seconds", {"service": "svc", "to": "99999-01-01"}, None, 400),
    ("GET", "/api/v1/incidents/" + "9" * 30, {}, None, 400),
    ("GET", "/api/v1/incidents/" + "9" * 4301, {}, None, 400),
    ("GET", "/api/v1/incidents/%C2%B2", {}, None, 400),
    ("GET", "/api/v1/incidents/0", {}, None, 400),
    ("GET", "/api/v1/incidents", {"limit": "1" * 50}, None, 400),
    ("GET", "/api/v1/incidents", {"limit": "²"}, None, 400),
    ("GET", "/api/v1/incidents", {"limit": "0"}, None, 400),
    ("GET", "/api/v1/incidents", {"limit": "1001"}, None, 400),
    ("DELETE", "/api/v1/maintenance/" + "9" * 30, {}, None, 400),
    ("DELETE", "/api/v1/maintenance/%C2%B2", {}, None, 400),
    ("POST", "/api/v1/incidents/1/notes", {}, b"[" * 20000 + b"]" * 20000, 400),
    ("POST", "/api/v1/maintenance", {}, {"service": "svc", "start": "9" * 400, "end": "1"}, 400),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "status"),
    HOSTILE,
    ids=[
        "from-400-digits",
        "from-1e20",
        "from-minus-1e20",
        "to-year-99999",
        "id-30-digits",
        "id-4301-digits",
        "id-superscript-two",
        "id-zero",
        "limit-50-digits",
        "limit-superscript",
        "limit-zero",
        "limit-over-1000",
        "window-id-30-digits",
        "window-id-superscript",
        "json-nested-20000",
        "maintenance-start-400-digits",
    ],
)
async def test_hostile_requests_get_a_4xx_json_error(
    api: tuple[TestClient, int, Path],
    method: str,
    path: str,
    query: dict[str, Any],
    body: Any,
    status: int,
) -> None:
    client, _, _ = api
    kwargs: dict[str, Any] = {"params": query, "headers": dict(AUTH)}
    if isinstance(body, bytes):
        kwargs["data"] = body
        kwargs["headers"]["Content-Type"] = "application/json"
    elif body is not None:
        kwargs["json"] = body
    r = await client.request(method, path, **kwargs)
    assert r.status == status, await r.text()
    assert r.content_type == "application/json"
    error = (await r.json())["error"]
    assert "\n" not in error and len(error) < 200


async def test_a_non_utf8_authorization_header_is_401(api: tuple[TestClient, int, Path]) -> None:
    client, incident_id, _ = api
    r = await client.post(
        f"/api/v1/incidents/{incident_id}/ack",
        headers={
            "Authorization": "Bearer \udcff\udcfe".encode("utf-8", "surrogateescape").decode(
                "latin-1"
            )
        },
        json={"by": "me"},
    )
    assert r.status == 401
    assert r.content_type == "application/json"


async def test_an_unparseable_request_is_400_and_one_log_line(
    api: tuple[TestClient, int, Path], caplog: pytest.LogCaptureFixture
) -> None:
    client, _, _ = api
    port = client.server.port
    assert port is not None
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Probe: \x1b[31m\x00\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    await writer.wait_closed()
    assert head.split()[1] == b"400", head
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r.levelname for r in server] == ["INFO"]
    assert server[0].exc_info is None and "malformed HTTP request" in server[0].getMessage()
    line = server[0].getMessage()
    assert line.isprintable(), line  # no terminal escape from the client in the log
