"""The simulator's DNSBL zone driven through its control API (POST /_sim/dnsbl), read by
the real checker over DNS on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from monitor.simulator import Simulator
from probes.dnsbl import DnsblChecker, DnsblConfig


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(tls=False)
    await s.start()
    yield s
    await s.stop()


async def _post(sim: Simulator, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim.http_url}/_sim/dnsbl", json=body) as r:
            return r.status, await r.json()


async def _check(sim: Simulator) -> tuple[str, str | None, str | None]:
    cfg = DnsblConfig.model_validate(
        {
            "type": "dnsbl",
            "name": "x",
            "domains": ["mail.example.com"],
            "domain_zones": ["dbl.spamhaus.org"],
            "resolver": f"{sim.dnsbl.host}:{sim.dnsbl.port}",
            "timeout_seconds": 0.5,
        }
    )
    [a] = await DnsblChecker(cfg).check()
    return a.result, a.txt, a.error


async def test_list_fault_and_delist_through_the_control_api(sim: Simulator) -> None:
    assert await _check(sim) == ("clean", None, None)
    listing = {"target": "mail.example.com", "zone": "dbl.spamhaus.org"}
    status, state = await _post(
        sim, {"action": "list", **listing, "codes": ["127.0.1.2"], "txt": "spam domain"}
    )
    assert status == 200 and "mail.example.com.dbl.spamhaus.org" in state["listed"]
    assert await _check(sim) == ("listed", "spam domain", None)
    assert (await _post(sim, {"action": "fault", "zone": "*", "fault": "refused"}))[0] == 200
    assert await _check(sim) == ("error", None, "refused")
    assert (await _post(sim, {"action": "fault", "zone": "*", "fault": "ok"}))[0] == 200
    assert (await _post(sim, {"action": "delist", **listing}))[0] == 200
    assert await _check(sim) == ("clean", None, None)
    async with aiohttp.ClientSession() as http, http.get(f"{sim.http_url}/_sim/state") as r:
        assert (await r.json())["dnsbl"]["port"] == sim.dnsbl.port


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"action": "list", "zone": "dbl.spamhaus.org"}, "missing field 'target'"),
        (
            {"action": "list", "target": "x.example", "zone": "z", "codes": ["nope"]},
            "'nope' is not an IPv4 address",
        ),
        (
            {"action": "list", "target": "x.example", "zone": "z", "txt": 5},
            '"txt" must be a string',
        ),
        ({"action": "fault", "fault": "explode"}, "fault must be one of"),
        ({"action": "fault", "fault": "code"}, "needs a code"),
        ({"action": "shout"}, "action must be list, delist or fault"),
        ([1, 2], "body must be a JSON object"),
    ],
)
async def test_bad_control_requests_are_one_line_400s(
    sim: Simulator, body: Any, error: str
) -> None:
    status, answer = await _post(sim, body)
    assert status == 400
    text = str(answer)
    assert error in text and "Traceback" not in text
