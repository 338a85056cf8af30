"""Loopback helpers shared by the tests: a free port, a real aiosmtpd mail sink that
records what it accepts and can be told to refuse, a JSON receiver (a webhook pager),
`availmon` run as a child process on a minimal config or as several long-running
`availmon run` processes, and waits bounded by a count of polls (never by elapsed
time)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Recorder:
    """Keeps every accepted message; `rcpt_reply` / `data_reply` inject refusals."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@contextmanager
def mail_sink(**controller: Any) -> Iterator[tuple[Recorder, int]]:
    """A running aiosmtpd server on 127.0.0.1 (its own thread): (recorder, port).
    `controller` goes to aiosmtpd's `Controller` (authenticator, TLS options...)."""
    handler = Recorder()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, **controller)
    ctl.start()
    try:
        yield handler, port
    finally:
        ctl.stop()


def minimal_config(
    path: Path, store_url: str, *, listen: str = "127.0.0.1:0", extra: str = ""
) -> Path:
    """Write a minimal config to `path`: one service, one HTTP probe to a closed port."""
    path.write_text(
        f'[monitor]\nlisten = "{listen}"\n[store]\nurl = "{store_url}"\n'
        '[[services]]\nname = "s"\n[[services.probes]]\ntype = "http"\nname = "api"\n'
        f'url = "http://127.0.0.1:9/"\n{extra}'
    )
    return path


def run_cli(
    *args: str,
    timeout: float = 60,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m monitor ARGS` in a child process (in `cwd`, with `env`), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env=env,
    )


async def until(what: str, check: Any, polls: int = 300) -> None:
    """Poll `check()` every 0.1 s, at most `polls` times; fail naming `what`."""
    for _ in range(polls):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def until_value(what: str, get: Callable[[], Awaitable[Any]], polls: int = 300) -> Any:
    """Poll the coroutine `get` every 0.1 s until it gives something other than None."""
    for _ in range(polls):
        value = await get()
        if value is not None:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class JsonReceiver:
    """An aiohttp server on 127.0.0.1 that keeps every JSON body POSTed to `path` (a
    webhook notifier's receiver): `url = await start()`, `received`, `await stop()`."""

    def __init__(self, path: str = "/hook") -> None:
        self.path = path
        self.received: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(json.loads(await request.read()))
        return web.json_response({})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(self.path, self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}{self.path}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class DaemonProcesses:
    """Long-running `availmon run` child processes, one per name (a vantage), each logging
    to `tmp/<name>.log`; mixed into a test's rig, which sets `tmp`, `configs` and `procs`."""

    tmp: Path
    configs: dict[str, Path]
    procs: dict[str, subprocess.Popen[bytes]]
    #: each one's HTTP listener
    ports: dict[str, int]

    async def leader(self, http: aiohttp.ClientSession) -> str | None:
        """The one whose /metrics says it leads (None: none answers so)."""
        for name, port in self.ports.items():
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    if f'availmon_leader{{vantage="{name}"}} 1.0' in await r.text():
                        return name
        return None

    def start(self, name: str) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(self.configs[name])],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to every one still running, then wait (SIGKILL after 30 s)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
