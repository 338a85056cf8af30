"""The built-in simulated email platform: one object owning the HTTP API, the SMTP injection
listener, the faults in force, the attempt log and the ground truth; plus `serve`, which runs
one until cancelled (`availmon simulate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import resource
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.clock import Clock, SystemClock
from monitor.simulator.api import CONTROL_PREFIX, ApiSide
from monitor.simulator.certs import server_context, write_certs
from monitor.simulator.dnsbl import DnsblServer
from monitor.simulator.faults import (
    CHANNELS,
    FAULT_DOCS,
    SMTP_STAGES,
    Act,
    ActiveFault,
    parse_fault,
)
from monitor.simulator.ledger import DEFAULT_MAX_LOG, Ledger, LogRecord
from monitor.simulator.scenario import ScenarioStep
from monitor.simulator.smtp import SERVER_NAME, SimSMTP, SmtpSide
from probes.base import Outcome

#: longest real sleep between clock checks while waiting for a scenario step, so that a
#: FakeClock moved by a test (or a stepped wall clock) is noticed promptly
_SCENARIO_POLL = 0.05
_BACKLOG = 1024
_WILDCARDS = {"", "0.0.0.0", "::"}


class Simulator:
    """A SparkPost-like platform on loopback that fails exactly as told.

    Faults are set per channel (`set_fault`, the `/_sim/fault` control endpoint or a
    scenario) and decided per attempt by arrival. Every attempt the simulator can tell apart
    is logged with the outcome the SLA rules give what it did (`expected`).

    Ground truth covers **keyed attempts only**: the attempt id arrives in the request
    header (API) or the message header (SMTP, after DATA), so an SMTP fault set at an earlier
    `stage` (banner, ehlo, mail, rcpt) or a `tls_fail` is logged with `attempt_id` None and
    cannot count. The default SMTP stage is after the message content for that reason.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        http_port: int = 0,
        smtp_port: int = 0,
        *,
        tls: bool = True,
        api_key: str | None = None,
        smtp_user: str = "SMTP_Injection",
        smtp_password: str | None = None,
        clock: Clock | None = None,
        control: bool = True,
        max_log: int = DEFAULT_MAX_LOG,
        dns_port: int = 0,
    ) -> None:
        self.host = host
        self.http_port = http_port
        self.smtp_port = smtp_port
        self.tls = tls
        self.api_key = api_key
        self.smtp_user = smtp_user
        self.smtp_password = smtp_password
        self.clock: Clock = clock or SystemClock()
        self.control = control
        self.ledger = Ledger(max_log)
        self.faults: dict[str, ActiveFault] = {}
        for ch in CHANNELS:
            self.faults.update(parse_fault(ch, "ok", {}))
        self.ca_file: Path | None = None
        #: (wall time applied, step) of every scenario step run so far
        self.applied: list[tuple[float, ScenarioStep]] = []
        self._tmp: Path | None = None
        self._tls_context: ssl.SSLContext | None = None
        #: a blocklist zone served over DNS (UDP and TCP) on `dns_port`
        self.dnsbl = DnsblServer("127.0.0.1" if host in _WILDCARDS else host, dns_port)
        self._api = ApiSide(self)
        self._smtp = SmtpSide(self)
        self._runner: web.AppRunner | None = None
        self._smtp_server: asyncio.Server | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        host = "127.0.0.1" if self.host in _WILDCARDS else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.http_port}"

    @property
    def log(self) -> list[LogRecord]:
        """What the simulator did to each attempt, oldest first (bounded: the oldest half is
        dropped past `max_log`; the ground truth is kept apart and is not)."""
        return self.ledger.log

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        loop = asyncio.get_running_loop()
        mail_log = logging.getLogger("mail.log")
        if mail_log.level == logging.NOTSET:
            # aiosmtpd logs several INFO lines per connection; at hundreds of attempts a
            # second that is the bulk of the CPU and of the output
            mail_log.setLevel(logging.WARNING)
        try:
            if self.tls:
                self._tmp = Path(tempfile.mkdtemp(prefix="availmon-sim-"))
                hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
                if self.host not in _WILDCARDS and self.host not in hosts:
                    hosts = (self.host, *hosts)
                files = write_certs(self._tmp, hosts)
                self._tls_context = server_context(files)
                self.ca_file = files.ca_file
            self._smtp_server = await loop.create_server(
                self._smtp_protocol, self.host, self.smtp_port, backlog=_BACKLOG
            )
            self.smtp_port = self._smtp_server.sockets[0].getsockname()[1]
            runner = web.AppRunner(
                self._api.app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
            )
            await runner.setup()
            self._runner = runner
            site = web.TCPSite(runner, self.host, self.http_port, backlog=_BACKLOG)
            await site.start()
            self.http_port = runner.addresses[0][1]
            await self.dnsbl.start()
        except BaseException:
            await self.stop()
            raise

    def _smtp_protocol(self) -> SimSMTP:
        return SimSMTP(
            self._smtp,
            hostname=SERVER_NAME,  # without it aiosmtpd calls getfqdn() per connection
            ident="ESMTP availmon simulator",
            tls_context=self._tls_context,
            auth_require_tls=self.tls,
            authenticator=self._smtp.authenticate,
            data_size_limit=1 << 20,
        )

    async def stop(self) -> None:
        """Close both listeners and abort every open connection, hung ones included."""
        tasks = self._smtp.abort_all()
        self._api.abort_all()
        await self.dnsbl.stop()
        if self._smtp_server is not None:
            self._smtp_server.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._smtp_server is not None:
            await self._smtp_server.wait_closed()
            self._smtp_server = None
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # -- faults ------------------------------------------------------------------------

    def set_fault(self, channel: str, fault: str, /, **params: Any) -> None:
        """Put `fault` in force on `channel` (api, smtp or both); ValueError when invalid.

        Positional-only so that `fraction`'s inner fault can be passed as `fault=`.
        """
        parsed = parse_fault(channel, fault, params)
        if not self.tls and any(a.action.act is Act.TLS_FAIL for a in parsed.values()):
            raise ValueError("fault 'tls_fail' needs the simulator started with tls=True")
        self.faults.update(parsed)

    def fault(self, channel: str) -> dict[str, Any]:
        """The fault in force on `channel`: {"fault": name, "params": {...}}."""
        if channel not in self.faults:
            raise ValueError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
        return self.faults[channel].describe()

    async def run_scenario(self, steps: Sequence[ScenarioStep], start_at: float) -> None:
        """Apply each step at wall time `start_at + step.at`, in order of `at`."""
        for step in steps:  # validate everything before the first step changes anything
            parse_fault(step.channel, step.fault, step.params)
        for step in sorted(steps, key=lambda s: s.at):
            target = start_at + step.at
            while (remaining := target - self.clock.wall()) > 0:
                await asyncio.sleep(min(remaining, _SCENARIO_POLL))
            self.set_fault(step.channel, step.fault, **step.params)
            self.applied.append((self.clock.wall(), step))

    # -- log and truth -----------------------------------------------------------------

    def record(
        self,
        channel: str,
        attempt_id: str | None,
        vantage: str | None,
        fault: str,
        reply: str,
        expected: Outcome,
    ) -> LogRecord:
        return self.ledger.record(
            channel, attempt_id, vantage, self.clock.wall(), fault, reply, expected
        )

    def ground_truth(self, start: int | None = None, end: int | None = None) -> dict[str, set[int]]:
        """Unavailable seconds {"api", "smtp", "service"} in [start, end), from keyed attempts:
        a second counts when it has ≥1 keyed attempt and all of them are qualifying failures
        (timeout, server_error); `service` is the union (combine `any`)."""
        return self.ledger.truth(start, end)

    def state(self) -> dict[str, Any]:
        return {
            "faults": {ch: f.describe() for ch, f in self.faults.items()},
            "counts": {ch: dict(c) for ch, c in self.ledger.counts.items()},
            "log_size": len(self.ledger.log),
            "last_seq": self.ledger.log[-1].seq if self.ledger.log else 0,
            "http_url": self.http_url,
            "smtp": {
                "host": self.host,
                "port": self.smtp_port,
                "starttls": self.tls,
                "auth_required": self.smtp_password is not None,
            },
            "ca_file": str(self.ca_file) if self.ca_file else None,
            "dnsbl": self.dnsbl.state(),
            "scenario": [{"applied_at": t, **s.to_json()} for t, s in self.applied],
            "known_faults": FAULT_DOCS,
            "smtp_stages": list(SMTP_STAGES),
        }


def _raise_open_file_limit() -> None:
    """A hang keeps each attempt's connection open until its client gives up: at hundreds of
    attempts a second that is thousands of sockets, past the usual soft limit of 1024."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def serve(
    host: str,
    http_port: int,
    smtp_port: int,
    *,
    tls: bool = True,
    api_key: str | None = None,
    smtp_password: str | None = None,
    scenario: list[ScenarioStep] | None = None,
    control: bool = True,
    dns_port: int = 0,
) -> None:
    """Run a simulator until cancelled; print one line with its URLs and ports at start.
    A scenario starts at the next whole second. Raises the process's open-file limit."""
    _raise_open_file_limit()
    sim = Simulator(
        host,
        http_port,
        smtp_port,
        tls=tls,
        api_key=api_key,
        smtp_password=smtp_password,
        control=control,
        dns_port=dns_port,
    )
    await sim.start()
    try:
        start_at = float(math.floor(sim.clock.wall()) + 1)
        parts = [
            f"availmon simulator: api {sim.http_url}",
            f"smtp {sim.http_url.split('//')[1].rsplit(':', 1)[0]}:{sim.smtp_port}"
            + (f" (STARTTLS, CA {sim.ca_file})" if tls else " (no TLS)"),
            f"dnsbl {sim.dnsbl.host}:{sim.dnsbl.port} (UDP and TCP)",
        ]
        if control:
            parts.append(f"control {sim.http_url}{CONTROL_PREFIX}state")
        if scenario:
            parts.append(f"scenario {len(scenario)} steps from {start_at:.0f}")
        print(", ".join(parts), flush=True)
        if scenario:
            await sim.run_scenario(scenario, start_at)
        await asyncio.Event().wait()
    finally:
        await sim.stop()
