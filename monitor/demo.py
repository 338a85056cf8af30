"""`availmon demo` and `availmon run` without a config: the daemon against the built-in simulator.

The demo plays a scripted outage on the simulated platform, shows the seconds as they are
decided, and ends by comparing what the daemon measured with the simulator's own ground
truth (what it did to each attempt, keyed by the attempt id the probe sent). It also
shows the Critical Issue that the outage opens and the page arriving at a local receiver.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import tempfile
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from alerting.model import Severity
from monitor.config import Settings, load
from monitor.daemon import Daemon
from monitor.simulator import DEFAULT_SCENARIO, ScenarioStep, Simulator, load_scenario
from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict, Verdict

MARKS = {Verdict.AVAILABLE: ".", Verdict.UNAVAILABLE: "X", Verdict.UNKNOWN: "?"}
DEMO_API_KEY = "demo-api-key-0123456789abcdef"
DEMO_SMTP_PASSWORD = DEMO_API_KEY  # SparkPost: the SMTP password is an API key
#: the sending IP and domain the demo's blocklist check watches (documentation ranges)
DEMO_SENDING_IP = "192.0.2.25"
DEMO_SENDING_DOMAIN = "mail.demo.example"


class PageReceiver:
    """A local webhook receiver standing in for the on-call pager."""

    def __init__(self) -> None:
        self.pages: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.pages.append({"received_at": time.time(), "body": body})
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/page", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/page"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def simulated_config(
    sim: Simulator,
    workdir: Path,
    *,
    listen: str = "127.0.0.1:0",
    page_url: str | None = None,
    demo_rules: bool = True,
    vantage: str = "demo",
    critical_rules: str | None = None,
    monitor_lines: str = "",
    store_url: str | None = None,
    api_key: str = DEMO_API_KEY,
    dnsbl_interval: float = 2,
) -> Path:
    """Write a config for the built-in simulator into `workdir`; return its path.

    Secrets go into files beside it (`file:` references), as they would in production.
    `critical_rules` (TOML lines of ``[services.critical]``) replaces the demo's rule;
    `monitor_lines` are added to ``[monitor]``; `store_url` replaces the SQLite file beside
    it (a PostgreSQL shared by several vantages); `api_key` is the simulator's key (the
    SMTP password too); `dnsbl_interval` how often the blocklist check asks the
    simulator's DNSBL zone (2 s in the demo; 300 s is the production default)."""
    workdir.mkdir(parents=True, exist_ok=True)
    key_file = workdir / "api-key"
    key_file.write_text(api_key + "\n")
    key_file.chmod(0o600)
    critical = critical_rules or (
        # the demo's outages are seconds long; production keeps the defaults (30 of 60 s)
        "window_seconds = 10\nmin_unavailable_seconds = 5\nrecover_after_seconds = 5\n"
        if demo_rules
        else ""
    )
    notifier = (
        f'\n[[notifiers]]\nname = "local-pager"\ntype = "webhook"\nurl = "{page_url}"\n'
        'tiers = ["critical", "escalation"]\n'
        if page_url
        else ""
    )
    ca = f'ca_file = "{sim.ca_file}"\n' if sim.ca_file else ""
    text = f"""# availmon config for the built-in simulated platform (written by availmon)
[monitor]
vantage = "{vantage}"
{monitor_lines}listen = "{listen}"

[store]
url = "{store_url or f"sqlite:///{(workdir / 'availmon.db').resolve()}"}"

[report]
dir = "{(workdir / "reports").resolve()}"

[[services]]
name = "simulated"
description = "the built-in simulated email platform"

[services.critical]
{critical}
[[services.probes]]
type = "http"
name = "api-account"
channel = "api"
url = "{sim.http_url}/api/v1/account"
headers = {{ Authorization = "file:{key_file.resolve()}" }}
timeout_seconds = 2

[[services.probes]]
type = "smtp"
name = "smtp-injection"
channel = "smtp"
host = "{sim.host}"
port = {sim.smtp_port}
tls = "{"starttls" if sim.ca_file else "none"}"
{ca}username = "SMTP_Injection"
password = "file:{key_file.resolve()}"
mail_from = "availmon@demo.example"
rcpt_to = "probe@demo.sink.sparkpostmail.com"
timeout_seconds = 2

# the simulator also serves a blocklist zone over DNS: `availmon demo` lists the sending
# IP on it for a while (a Non-Critical Issue of kind "blocklisted")
[[services.blocklists]]
type = "dnsbl"
name = "blocklists"
ips = ["{DEMO_SENDING_IP}"]
domains = ["{DEMO_SENDING_DOMAIN}"]
ip_zones = ["zen.spamhaus.org"]
domain_zones = ["dbl.spamhaus.org"]
resolver = "{sim.dnsbl.host}:{sim.dnsbl.port}"
interval_seconds = {dnsbl_interval:g}
timeout_seconds = 1
{notifier}"""
    path = workdir / "config.toml"
    path.write_text(text)
    return path


class LiveView:
    """One row per channel, one mark per decided second: . available, X unavailable, ? unknown."""

    def __init__(self, out: TextIO, width: int = 60) -> None:
        self.out = out
        self.width = width
        self.rows: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=width))
        self.counts: dict[str, dict[Verdict, int]] = defaultdict(lambda: defaultdict(int))
        self.tty = out.isatty()
        self._drawn = 0
        self.from_second: int | None = None

    def __call__(self, second: int, verdicts: list[SecondVerdict]) -> None:
        if self.from_second is not None and second < self.from_second:
            return
        for v in verdicts:
            self.rows[v.channel].append(MARKS[v.verdict])
            self.counts[v.channel][v.verdict] += 1
        if self.tty:
            self.draw()
        else:
            # piped (| tee, a log): one line per decided second, nothing redrawn
            stamp = time.strftime("%H:%M:%SZ", time.gmtime(second))
            marks = "  ".join(f"{v.channel} {MARKS[v.verdict]}" for v in verdicts)
            self.out.write(f"{stamp}  {marks}\n")
            self.out.flush()

    def draw(self) -> None:
        lines = []
        for channel in ("api", "smtp", SERVICE_CHANNEL):
            if channel not in self.rows:
                continue
            c = self.counts[channel]
            lines.append(
                f"{channel:>8} {''.join(self.rows[channel]):<{self.width}} "
                f"ok {c[Verdict.AVAILABLE]:>4}  unavail {c[Verdict.UNAVAILABLE]:>3}  "
                f"unknown {c[Verdict.UNKNOWN]:>3}"
            )
        if self.tty and self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)


def _count_unavailable(settings: Settings, daemon: Daemon, start: int, end: int) -> dict[str, int]:
    store = daemon.store
    assert store is not None
    out = {}
    for channel in ("api", "smtp", SERVICE_CHANNEL):
        runs = store.runs("simulated", channel, start, end, settings.monitor.vantage)
        out[channel] = sum(r.seconds for r in runs if r.verdict is Verdict.UNAVAILABLE)
    return out


async def run_demo(
    *,
    duration: float = 60.0,
    as_json: bool = False,
    workdir: Path | None = None,
    scenario_path: Path | None = None,
    view: bool = True,
    out: TextIO = sys.stdout,
) -> int:
    steps: list[ScenarioStep] = (
        load_scenario(scenario_path) if scenario_path else list(DEFAULT_SCENARIO)
    )
    workdir = workdir or Path(tempfile.mkdtemp(prefix="availmon-demo-"))
    receiver = PageReceiver()
    await receiver.start()
    sim = Simulator(tls=True, api_key=DEMO_API_KEY, smtp_password=DEMO_SMTP_PASSWORD)
    await sim.start()
    config_path = simulated_config(sim, workdir, page_url=receiver.url)
    settings = load(config_path)
    daemon = Daemon(settings)
    live = LiveView(out)
    if view:
        daemon.listeners.append(live)
    await daemon.start()
    t0 = int(time.time()) + 2
    live.from_second = t0
    t_end = t0 + int(duration)
    if not as_json:
        out.write(
            f"availmon demo: simulated platform at {sim.http_url} (API) and "
            f"{sim.host}:{sim.smtp_port} (SMTP); daemon at http://127.0.0.1:{daemon.http_port}/"
            " (open it in a browser)\n"
            f"workdir {workdir}; scenario of {len(steps)} steps over {int(duration)} s\n"
        )
        for step in steps:
            if step.at < duration:
                out.write(f"  +{step.at:>4.0f}s {step.channel:<5} {step.fault:<10} {step.note}\n")
        out.write("\n")
    scenario = asyncio.create_task(sim.run_scenario(steps, start_at=float(t0)))
    listing = asyncio.create_task(_blocklist_story(sim, t0, duration))
    try:
        await asyncio.sleep(max(0.0, t_end - time.time()))
        # every attempt of the last second must have ended: at most the longest timeout
        limit = time.time() + settings.services[0].max_timeout + 5
        while daemon.last_final.get("simulated", 0) < t_end - 1 and time.time() < limit:
            await asyncio.sleep(0.2)
        # let the page reach the receiver
        limit = time.time() + 5
        while not receiver.pages and time.time() < limit and _critical(daemon) is not None:
            await asyncio.sleep(0.2)
    finally:
        scenario.cancel()
        listing.cancel()
        await asyncio.gather(scenario, listing, return_exceptions=True)
        await daemon.stop()
        await sim.stop()
        await receiver.stop()
    if view and not live.tty:
        live.draw()
    truth = sim.ground_truth(t0, t_end)
    injected = {ch: len(truth.get(ch, set())) for ch in ("api", "smtp", SERVICE_CHANNEL)}
    measured = await asyncio.to_thread(_count_unavailable, settings, daemon, t0, t_end)
    critical = await asyncio.to_thread(_critical, daemon)
    summary: dict[str, Any] = {
        "injected": injected,
        "measured": measured,
        "match": injected == measured,
        "from": t0,
        "to": t_end,
        "workdir": str(workdir),
        "config": str(config_path),
        "critical_issue": _critical_summary(critical, receiver),
        "blocklist": await asyncio.to_thread(_blocklist_summary, daemon),
    }
    assert daemon.store is not None
    await asyncio.to_thread(daemon.store.close)
    if as_json:
        out.write(json.dumps(summary) + "\n")
    else:
        out.write("\n")
        for ch in ("api", "smtp", SERVICE_CHANNEL):
            ok = "ok" if injected[ch] == measured[ch] else "MISMATCH"
            out.write(f"{ch:>8}: injected {injected[ch]:>3} unavailable s, ")
            out.write(f"measured {measured[ch]:>3}  {ok}\n")
        ci = summary["critical_issue"]
        if ci["opened"]:
            opened = ci["opened_at"] - ci["outage_start"]
            out.write(
                f"Critical Issue opened {opened:.1f} s after the outage started; page received"
                f" {ci['notified_at'] - ci['outage_start']:.1f} s after the outage started"
                f" ({ci['notified_at'] - ci['opened_at']:.2f} s after the opening)\n"
                if ci["notified_at"]
                else f"Critical Issue opened {opened:.1f} s after the outage started; no page"
                " received\n"
            )
        else:
            out.write("no Critical Issue opened\n")
        for spell in summary["blocklist"]["spells"]:
            end = "still listed" if spell["end"] is None else f"delisted at {_hms(spell['end'])}"
            out.write(
                f"blocklist: {spell['target']} listed on {spell['zone']} at "
                f"{_hms(spell['start'])}, {end}\n"
            )
        out.write(f"config and store kept in {workdir}\n")
    return 0 if summary["match"] else 1


async def _blocklist_story(sim: Simulator, t0: int, duration: float) -> None:
    """The demo's sending IP is listed on the simulator's zen.spamhaus.org a few seconds
    in, and delisted half-way: the blocklist check (every 2 s) opens and resolves a
    Non-Critical Issue of kind ``blocklisted``."""
    await asyncio.sleep(max(0.0, t0 + 3 - time.time()))
    reason = "Listed in the demo: https://check.spamhaus.org/"
    sim.dnsbl.list(DEMO_SENDING_IP, "zen.spamhaus.org", ["127.0.0.3"], reason)
    await asyncio.sleep(max(0.0, t0 + duration / 2 - time.time()))
    sim.dnsbl.delist(DEMO_SENDING_IP, "zen.spamhaus.org")


def _hms(t: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(t))


def _blocklist_summary(daemon: Daemon) -> dict[str, Any]:
    if daemon.store is None:
        return {"spells": []}
    spells = daemon.store.spells("simulated")
    return {
        "spells": [
            {"target": x.target, "zone": x.zone, "start": x.started_at, "end": x.ended_at}
            for x in spells
        ]
    }


def _critical(daemon: Daemon) -> Any:
    if daemon.store is None:
        return None
    rows = daemon.store.list_incidents(service="simulated", severity=Severity.CRITICAL)
    return min(rows, key=lambda i: i.id) if rows else None


def _critical_summary(incident: Any, receiver: PageReceiver) -> dict[str, Any]:
    if incident is None:
        return {"opened": False, "outage_start": None, "opened_at": None, "notified_at": None}
    notified = [
        p["received_at"]
        for p in receiver.pages
        if p["body"].get("incident", {}).get("id") == incident.id
        and p["body"].get("event") == "trigger"
    ]
    return {
        "opened": True,
        "id": incident.id,
        "dedup_key": incident.dedup_key,
        "outage_start": incident.first_unavailable,
        "opened_at": incident.opened_at,
        "notified_at": min(notified) if notified else None,
    }


#: where `availmon run` without a config puts the built-in simulator (HTTP API, SMTP)
SIMULATOR_PORTS = (8025, 2525)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


async def run_embedded(workdir: Path = Path("availmon-data")) -> int:
    """`availmon run` with no config: the daemon on embedded defaults (SQLite in
    ./availmon-data, listener 127.0.0.1:9310) against the built-in simulator."""
    # the documented ports (README "The simulator") when they are free, so that its
    # control API is where the README says; any free port otherwise
    http_port, smtp_port = (p if port_free(p) else 0 for p in SIMULATOR_PORTS)
    sim = Simulator(
        http_port=http_port,
        smtp_port=smtp_port,
        tls=True,
        api_key=DEMO_API_KEY,
        smtp_password=DEMO_SMTP_PASSWORD,
    )
    await sim.start()
    try:
        config_path = simulated_config(
            sim,
            workdir,
            listen="127.0.0.1:9310",
            demo_rules=False,
            vantage=socket.gethostname(),
            dnsbl_interval=60,
        )
        sys.stderr.write(
            f"availmon: no --config given: monitoring the built-in simulated platform "
            f"(API {sim.http_url}, SMTP {sim.host}:{sim.smtp_port}; inject faults with "
            f"POST {sim.http_url}/_sim/fault); config written to {config_path}; "
            "web view, status page, metrics and API on http://127.0.0.1:9310/\n"
        )
        await Daemon(load(config_path), config_path=config_path).run()
    finally:
        await sim.stop()
    return 0


__all__ = ["LiveView", "PageReceiver", "run_demo", "run_embedded", "simulated_config"]
