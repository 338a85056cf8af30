"""Three real `availmon run` processes (vantages a, b and c) on one PostgreSQL
(tests/pgserver.py) probing one simulator: a directly, b and c each through a pair of
fault-injecting proxies of their own (tests/faultproxy.py, HTTP and SMTP), so that the
test can cut one vantage off the platform while the others still reach it. Each config
holds three services with the same probes, judged by quorum "all", "majority" and 2.

The scenario: healthy; c cut off (1 of 3 see the platform down); b and c cut off (2 of 3);
a simulator fault (503 on the API, for all 3); then c stopped (a vantage that is down does
not vote) with b cut off, and with the simulator fault. Every switch falls half-way
between two launch instants of the services, so each second's attempts all see the same
state, and the test keeps every vantage's own ground truth per second: the simulator's
(checked against what the simulator itself recorded) plus the seconds its proxies hung.

Checked second by second over the scenario: each vantage's own verdicts
(`/api/v1/seconds?vantage=`) are its ground truth, c's absent once stopped; each service's
combined verdicts (`/api/v1/seconds`) are the quorum of the vantages' truths, computed
here by a few lines of its own; and the leader's Critical Issues follow the quorum: with
2 of 3 vantages cut off, q-majority and q-2 open one and q-all does not until the
platform itself fails; exactly one per outage per service, spanning exactly its seconds."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.config import load
from monitor.launcher import auto_phases
from monitor.simulator import Simulator
from tests import pgserver
from tests.faultproxy import FaultProxy
from tests.loopback import DaemonProcesses, free_port, until_value

pytestmark = [pytest.mark.external, pytest.mark.slow]

VANTAGES = ("a", "b", "c")
#: the cut-off-able vantages (a probes the simulator directly)
PROXIED = ("b", "c")
QUORUMS: dict[str, Any] = {"q-all": "all", "q-majority": "majority", "q-2": 2}
TIMEOUT = 2
#: a switch must fall at least this far from every launch instant (else a second's
#: attempts could see two states and its truth would be a guess)
MARGIN = 0.03


def _config(
    tmp: Path, vantage: str, port: int, url: str, api: tuple[str, int], smtp: tuple[str, int]
) -> Path:
    work = tmp / vantage
    work.mkdir(parents=True)
    key = work / "api-key"
    key.write_text("k\n")
    key.chmod(0o600)
    text = f"""[monitor]
vantage = "{vantage}"
listen = "127.0.0.1:{port}"
lease_ttl_seconds = 2
lease_renew_seconds = 0.5

[store]
url = "{url}"

[report]
dir = "{work / "reports"}"
"""
    for name, quorum in QUORUMS.items():
        text += f"""
[[services]]
name = "{name}"
quorum = {quorum if isinstance(quorum, int) else f'"{quorum}"'}

[services.critical]
window_seconds = 10
min_unavailable_seconds = 5
recover_after_seconds = 5
reopen_within_seconds = 2

[[services.probes]]
type = "http"
name = "{name}-api"
channel = "api"
url = "http://{api[0]}:{api[1]}/api/v1/account"
headers = {{ Authorization = "file:{key}", X-Availmon-Vantage = "{vantage}" }}
timeout_seconds = {TIMEOUT}
attempts_per_second = 1

[[services.probes]]
type = "smtp"
name = "{name}-smtp"
channel = "smtp"
host = "{smtp[0]}"
port = {smtp[1]}
tls = "none"
username = "SMTP_Injection"
password = "file:{key}"
mail_from = "availmon@demo.example"
rcpt_to = "probe@demo.sink.sparkpostmail.com"
message_headers = {{ X-Availmon-Vantage = "{vantage}" }}
timeout_seconds = {TIMEOUT}
attempts_per_second = 1
"""
    path = work / "config.toml"
    path.write_text(text)
    path.chmod(0o600)  # header values count as secrets: the vantage's name too
    return path


def _launches(config: Path) -> dict[str, list[tuple[str, float]]]:
    """Per service, (channel, fraction of the second) of each probe's one launch a second:
    the launcher's own phases (monitor/launcher.py), spread by the service's name."""
    out: dict[str, list[tuple[str, float]]] = {}
    for svc in load(config).services:
        probes = [p for p in svc.probes if p.enabled]
        assert all(p.attempts_per_second == 1 for p in probes)
        phases = auto_phases(probes, svc.name)
        out[svc.name] = [(p.channel, phases[p.name]) for p in probes]
    return out


@dataclass(frozen=True)
class State:
    cut: frozenset[str] = frozenset()  # vantages whose proxies hang
    fault: bool = False  # the simulator answers 503 on the API
    down: frozenset[str] = frozenset()  # vantages stopped


@dataclass
class Rig(DaemonProcesses):
    tmp: Path
    sim: Simulator
    proxies: dict[str, dict[str, FaultProxy]]
    url: str
    ports: dict[str, int] = field(default_factory=dict)
    configs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: (wall instant, state from then on), in order
    timeline: list[tuple[float, State]] = field(default_factory=list)

    def configure(self) -> None:
        for v in VANTAGES:
            self.ports[v] = free_port()
            if v in PROXIED:
                api = ("127.0.0.1", self.proxies[v]["api"].port)
                smtp = ("127.0.0.1", self.proxies[v]["smtp"].port)
            else:
                api = ("127.0.0.1", self.sim.http_port)
                smtp = (self.sim.host, self.sim.smtp_port)
            self.configs[v] = _config(self.tmp, v, self.ports[v], self.url, api, smtp)

    def apply(self, state: State) -> None:
        """Put `state` in force at once and note the instant."""
        for v in PROXIED:
            for proxy in self.proxies[v].values():
                proxy.set_mode("hang" if v in state.cut else "pass")
        if state.fault:
            self.sim.set_fault("api", "5xx", status=503)
        else:
            self.sim.set_fault("api", "ok")
        for v in state.down:
            proc = self.procs[v]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        self.timeline.append((time.time(), state))

    def state_at(self, t: float) -> State:
        now = State()
        for at, state in self.timeline:
            if at <= t:
                now = state
        return now


async def _get(http: aiohttp.ClientSession, port: int, path: str, **query: Any) -> Any:
    async with http.get(f"http://127.0.0.1:{port}{path}", params=query) as r:
        assert r.status == 200, (path, query, r.status, await r.text())
        return await r.json()


async def _stored_through(http: aiohttp.ClientSession, port: int) -> int | None:
    """The last second every service of the vantage has in the store (None: not yet)."""
    with contextlib.suppress(aiohttp.ClientError, OSError):
        status = await _get(http, port, "/api/v1/status")
        through = [s["stored_through"] for s in status["services"]]
        if all(t is not None for t in through):
            return min(through)
    return None


def _quorum(votes: list[bool], quorum: Any) -> bool | None:
    """The combined verdict (True: unavailable) of the vantages that measured a second,
    written here apart from monitor/quorum.py: "all" of them, more than half, or N of
    them (all of them when fewer measured)."""
    if not votes:
        return None
    if quorum == "all":
        need = len(votes)
    elif quorum == "majority":
        need = len(votes) // 2 + 1
    else:
        need = min(quorum, len(votes))
    return sum(votes) >= need


def _runs(seconds: dict[int, bool | None]) -> list[tuple[int, int]]:
    """(first, last) of each stretch of consecutive unavailable seconds."""
    out: list[tuple[int, int]] = []
    for s in sorted(seconds):
        if seconds[s]:
            if out and out[-1][1] == s - 1:
                out[-1] = (out[-1][0], s)
            else:
                out.append((s, s))
    return out


async def test_three_vantages_one_cut_off_judged_by_quorum_all_majority_and_two(
    tmp_path: Path,
) -> None:
    sim = Simulator(tls=False, api_key="k", smtp_password="k")
    await sim.start()
    proxies: dict[str, dict[str, FaultProxy]] = {
        v: {
            "api": FaultProxy("127.0.0.1", sim.http_port),
            "smtp": FaultProxy(sim.host, sim.smtp_port),
        }
        for v in PROXIED
    }
    rig = Rig(tmp_path, sim, proxies, pgserver.fresh_url())
    try:
        for pair in proxies.values():
            for proxy in pair.values():
                await proxy.start()
        rig.configure()
        launches = _launches(rig.configs["a"])
        fractions = sorted(f for probes in launches.values() for _, f in probes)
        # the longest quiet stretch of the second runs from the last launch to the first
        # of the next second (the services' names put their launches close together)
        gap = fractions[0] + 1 - fractions[-1]
        assert gap >= 0.2, fractions
        into = (fractions[-1] + fractions[0] + 1) / 2 - 1  # from the second's start

        async def switch(second: int, state: State) -> None:
            """Apply `state` half-way between the last launch of second-1 and the first
            of `second`: every attempt of `second` on sees it, none before."""
            await asyncio.sleep(max(0.0, second + into - time.time()))
            rig.apply(state)

        async with aiohttp.ClientSession() as http:
            rig.start("a")  # the first to ask leads: a, which nothing cuts off or stops
            assert await until_value("a leader", lambda: rig.leader(http)) == "a"
            rig.start("b")
            rig.start("c")
            through = [
                await until_value(
                    f"{v}'s first stored seconds",
                    functools.partial(_stored_through, http, rig.ports[v]),
                    polls=600,
                )
                for v in VANTAGES
            ]
            s0 = max(through) + 2  # the scenario's first second, past each one's start
            rig.timeline.append((0.0, State()))
            # the phases: first second of each, and the state from then on
            s1, s2, s3, s4, s5, s6 = s0 + 4, s0 + 11, s0 + 19, s0 + 27, s0 + 38, s0 + 46
            end = s6 + 8  # the last phase (healthy again) is checked for 8 s
            await switch(s1, State(cut=frozenset({"c"})))
            await switch(s2, State(cut=frozenset({"b", "c"})))
            await switch(s3, State(fault=True))
            await switch(s4, State(cut=frozenset({"b"}), down=frozenset({"c"})))
            await asyncio.to_thread(rig.procs["c"].wait, 30)
            await switch(s5, State(fault=True, down=frozenset({"c"})))
            await switch(s6, State(down=frozenset({"c"})))

            # no attempt was launched near a switch: each second saw one state
            for at, _ in rig.timeline[1:]:
                for probes in launches.values():
                    for _, f in probes:
                        off = (at - f) % 1.0
                        assert MARGIN < off < 1 - MARGIN, (at, f, rig.timeline)

            # every vantage's own truth: (service, second) → unavailable, None when down
            truth: dict[str, dict[str, dict[int, bool | None]]] = {}
            for v in VANTAGES:
                truth[v] = {}
                for svc, probes in launches.items():
                    truth[v][svc] = {}
                    for s in range(s0, end):
                        states = [(ch, rig.state_at(s + f)) for ch, f in probes]
                        truth[v][svc][s] = (
                            None
                            if any(v in st.down for _, st in states)
                            else any(v in st.cut or (ch == "api" and st.fault) for ch, st in states)
                        )
            # the simulator's own record agrees with what the test did to it: exactly
            # the seconds of its fault are unavailable to the attempts that reached it
            api = [f for probes in launches.values() for ch, f in probes if ch == "api"]
            faulted = {s for s in range(s0, end) if all(rig.state_at(s + f).fault for f in api)}
            assert sim.ground_truth(s0, end)["service"] == faulted
            assert faulted == set(range(s3, s4)) | set(range(s5, s6))
            # every vantage sends its own attempt ids (probe:second:slot@vantage): the id
            # names the vantage the X-Availmon-Vantage header names, and the same slot of a
            # probe arrives as three attempts, one from each vantage
            keyed = [r for r in sim.log if r.attempt_id and s0 <= (r.second or 0) < end]
            assert keyed and all(str(r.attempt_id).endswith(f"@{r.vantage}") for r in keyed)
            ids: dict[tuple[Any, ...], set[str]] = {}
            for r in keyed:
                ids.setdefault((r.channel, r.probe, r.second, r.slot), set()).add(str(r.attempt_id))
            assert max(len(i) for i in ids.values()) == 3
            assert all(p.accepted_hung > 0 for pair in proxies.values() for p in pair.values())

            # every seconds of the window stored by the vantages still running
            for v in ("a", "b"):
                await until_value(
                    f"{v}'s seconds through the end",
                    functools.partial(_ready_through, http, rig.ports[v], end - 1),
                    polls=200,
                )
            port = rig.ports["a"]
            words = {True: "unavailable", False: "available"}
            wrong: list[tuple[Any, ...]] = []
            # (1) each vantage's own verdicts are its truth; c's, once stopped, are absent
            for v in VANTAGES:
                for svc in QUORUMS:
                    body = await _get(
                        http,
                        port,
                        "/api/v1/seconds",
                        service=svc,
                        vantage=v,
                        to=end,
                        **{"from": s0},
                    )
                    got = {row["t"]: row["verdict"] for row in body["seconds"]}
                    for s, want in truth[v][svc].items():
                        if want is None:
                            if got.get(s, "unknown") != "unknown":
                                wrong.append(("own", v, svc, s, "absent", got.get(s)))
                        elif got.get(s) != words[want]:
                            wrong.append(("own", v, svc, s, words[want], got.get(s)))
            # (2) each service's combined verdicts are the quorum of the vantages' truths
            combined: dict[str, dict[int, bool | None]] = {}
            for svc, quorum in QUORUMS.items():
                combined[svc] = {}
                body = await _get(
                    http, port, "/api/v1/seconds", service=svc, to=end, **{"from": s0}
                )
                got = {row["t"]: row["verdict"] for row in body["seconds"]}
                for s in range(s0, end):
                    votes = [t for v in VANTAGES if (t := truth[v][svc][s]) is not None]
                    want = combined[svc][s] = _quorum(votes, quorum)
                    assert want is not None
                    if got.get(s) != words[want]:
                        wrong.append(("combined", svc, s, words[want], got.get(s)))
            assert wrong == [], wrong[:20]
            # the scenario says what the quorums make of it: 2 of 3 is enough for majority
            # and 2, not for all; with c down, b alone is 1 of 2 and the fault 2 of 2
            assert _runs(combined["q-all"]) == [(s3, s4 - 1), (s5, s6 - 1)]
            for svc in ("q-majority", "q-2"):
                assert _runs(combined[svc]) == [(s2, s4 - 1), (s5, s6 - 1)]

            # (3) the leader's Critical Issues: one per outage per service, each over
            # exactly that outage's seconds, recovered once it is over
            async def incidents_done() -> list[dict[str, Any]] | None:
                body = await _get(http, port, "/api/v1/incidents", severity="critical")
                found = body["incidents"]
                for svc in QUORUMS:
                    last = [
                        i for i in found if i["service"] == svc and i["first_unavailable"] >= s5
                    ]
                    if not any(i["state"] == "recovered" for i in last):
                        return None
                return list(found)

            found = await until_value("every outage recovered", incidents_done, polls=300)
            for svc in QUORUMS:
                mine = sorted((i for i in found if i["service"] == svc), key=lambda i: i["id"])
                outages = _runs(combined[svc])
                assert [
                    (i["first_unavailable"], i["last_unavailable"], i["unavailable_seconds"])
                    for i in mine
                ] == [(a, b, b - a + 1) for a, b in outages], (svc, mine)
                assert all(i["state"] == "recovered" for i in mine), mine
    finally:
        rig.stop()
        for pair in proxies.values():
            for proxy in pair.values():
                await proxy.stop()
        await sim.stop()
    logs = "".join(rig.log(v) for v in VANTAGES if (tmp_path / f"{v}.log").exists())
    assert "Traceback" not in logs


async def _ready_through(http: aiohttp.ClientSession, port: int, second: int) -> bool | None:
    through = await _stored_through(http, port)
    return True if through is not None and through >= second else None
