"""The simulator's SMTP side: an aiosmtpd session (STARTTLS, AUTH LOGIN/PLAIN) that
misbehaves on command at the banner, EHLO, MAIL, RCPT, STARTTLS or after the message content.

aiosmtpd's `SMTP` protocol runs under `loop.create_server` in the simulator's own loop (no
`Controller` thread), so it is cheap and `stop()` can abort every connection.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import re
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from monitor.simulator.faults import Act, Action
from monitor.simulator.host import Host
from monitor.simulator.wire import abort_with_rst, wait_forever
from probes.base import Outcome

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


SERVER_NAME = "smtp.availmon.sim"
_HEADERS_END = re.compile(rb"\r?\n\r?\n")
_ATTEMPT_HEADER = re.compile(rb"^X-Availmon-Attempt:[ \t]*([^\s]+)", re.I | re.M)
_VANTAGE_HEADER = re.compile(rb"^X-Availmon-Vantage:[ \t]*([^\s]+)", re.I | re.M)
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^@>\s]+)@availmon>", re.I | re.M)
# bytes a TLS client cannot take for a ServerHello: its handshake fails at once
_NOT_TLS = b"this is not TLS\r\n"


def message_keys(content: bytes) -> tuple[str | None, str | None]:
    """(attempt id, vantage) from a message's header block; Message-ID is the fallback."""
    m = _HEADERS_END.search(content)
    head = content[: m.start()] if m else content
    hit = _ATTEMPT_HEADER.search(head) or _MESSAGE_ID.search(head)
    vantage = _VANTAGE_HEADER.search(head)
    return (
        hit.group(1).decode("ascii", "replace") if hit else None,
        vantage.group(1).decode("ascii", "replace") if vantage else None,
    )


class QuietSession(Session):
    """aiosmtpd logs a deprecation WARNING each time it sets `login_data` on a successful
    AUTH, i.e. once per attempt here; this session keeps the value without the warning."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class SimSMTP(SMTP):
    """One SMTP connection. Adds the banner and STARTTLS fault points aiosmtpd has no hook
    for, and keeps per-connection state: a slow decision carried to DATA, the first EHLO."""

    _dir_cache: list[str] | None = None

    def __init__(self, handler: SmtpSide, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.side = handler
        self.carried: tuple[str, Action] | None = None
        self.ehlo_seen = False
        self.greeting_reply: str | None = None
        self.task: asyncio.Task[Any] | None = None
        self.raw_transport: asyncio.BaseTransport | None = None

    def __dir__(self) -> list[str]:
        # aiosmtpd's __init__ scans dir(self) and inspect.getmembers(self) on every
        # connection for its smtp_* commands and auth_* mechanisms; listing only those names
        # (computed once per class) halves its per-connection setup (~200 → ~110 µs)
        names = SimSMTP.__dict__.get("_dir_cache")
        if names is None:
            names = [n for n in object.__dir__(self) if n.startswith(("smtp_", "auth_"))]
            SimSMTP._dir_cache = names
        return list(names)

    def _create_session(self) -> Session:
        return QuietSession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # called again with the TLS transport after STARTTLS; the TCP one is what a reset
        # must abort
        if self.raw_transport is None:
            self.raw_transport = transport
        super().connection_made(transport)
        self.side.connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.side.connections.discard(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        # aiosmtpd sends the greeting inside _handle_client; the banner fault point wraps it
        self.task = asyncio.current_task()
        reply = await self.side.strike(self, "banner")
        if reply is not None:
            await self.push(reply)
            if self.transport is not None:
                self.transport.close()
            await wait_forever()
        await super()._handle_client()

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.tls_context is not None and not arg:
            await self.side.strike(self, "starttls")
        await super().smtp_STARTTLS(arg)


class SmtpSide:
    """The aiosmtpd handler of one simulator: hooks for EHLO, MAIL, RCPT, DATA and AUTH."""

    def __init__(self, sim: Host) -> None:
        self._sim = sim
        self.connections: set[SimSMTP] = set()
        self._queue_ids = itertools.count(1)
        self._terminal: dict[Act, Callable[[SimSMTP, Action], Awaitable[None]]] = {
            Act.REPLY: self._reply_and_close,
            Act.HANG: self._hang,
            Act.RESET: self._reset,
            Act.DROP: self._drop,
            Act.TLS_FAIL: self._tls_fail,
        }

    def abort_all(self) -> list[asyncio.Task[Any]]:
        """Abort every connection (stop()); returns their session tasks to wait for."""
        tasks = [c.task for c in self.connections if c.task is not None]
        for conn in list(self.connections):
            abort_with_rst(conn.raw_transport)
        self.connections.clear()
        return tasks

    async def strike(self, server: SimSMTP, stage: str) -> str | None:
        """Apply the SMTP fault if it strikes at `stage` (before the attempt id is known).

        Returns a reply line to send instead of the normal one, None to go on normally; a
        terminal action (hang, reset, drop, tls_fail, 421) never returns.
        """
        active = self._sim.faults["smtp"]
        action = active.decide(stage)
        if action is None or action.act is Act.PASS:
            return None
        if action.act is Act.SLOW:
            server.carried = (active.name, action)
            await asyncio.sleep(action.delay)
            return None
        self._sim.record("smtp", None, None, active.name, action.reply, action.expected)
        return await self._perform(server, action)

    async def _perform(self, server: SimSMTP, action: Action) -> str:
        if action.act is Act.REPLY and not action.close:
            return action.text
        await self._terminal[action.act](server, action)
        await wait_forever()

    async def _reply_and_close(self, server: SimSMTP, action: Action) -> None:
        await server.push(action.text)
        if server.transport is not None:
            server.transport.close()

    async def _hang(self, _server: SimSMTP, _action: Action) -> None:
        await wait_forever()

    async def _reset(self, server: SimSMTP, _action: Action) -> None:
        abort_with_rst(server.raw_transport)

    async def _drop(self, server: SimSMTP, _action: Action) -> None:
        if server.transport is not None:
            server.transport.close()

    async def _tls_fail(self, server: SimSMTP, _action: Action) -> None:
        await server.push("220 2.0.0 Ready to start TLS")
        if server.transport is not None:
            server.transport.write(_NOT_TLS)  # type: ignore[attr-defined]
            server.transport.close()

    # -- aiosmtpd hooks ----------------------------------------------------------------

    async def _greeting_fault(self, server: SimSMTP) -> str | None:
        # the "ehlo" fault point is the connection's first greeting; a refused EHLO refuses
        # the client's HELO fallback too (without counting a second arrival), and the EHLO
        # that follows STARTTLS is not a new fault point
        if not server.ehlo_seen:
            server.ehlo_seen = True
            server.greeting_reply = await self.strike(server, "ehlo")
        return server.greeting_reply

    async def handle_EHLO(
        self,
        server: SimSMTP,
        session: Session,
        _envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        reply = await self._greeting_fault(server)
        if reply is not None:
            return [reply]
        session.host_name = hostname
        # aiosmtpd writes (and drains) each line on its own: one joined line puts the same
        # bytes on the wire in one send, which matters at hundreds of sessions a second
        return ["\r\n".join(responses)]

    async def handle_HELO(
        self, server: SimSMTP, session: Session, _envelope: Envelope, hostname: str
    ) -> str:
        reply = await self._greeting_fault(server)
        if reply is not None:
            return reply
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self,
        server: SimSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        reply = await self.strike(server, "mail")
        if reply is not None:
            return reply
        if self._sim.smtp_password is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self,
        server: SimSMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        reply = await self.strike(server, "rcpt")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SimSMTP, _session: Session, envelope: Envelope) -> str:
        attempt_id, vantage = message_keys(envelope.original_content or b"")
        record = self._sim.record
        active = self._sim.faults["smtp"]
        carried, server.carried = server.carried, None
        ok = f"250 2.0.0 OK {next(self._queue_ids):08X} queued"
        action = active.decide("data")
        if action is not None and action.act is not Act.PASS:
            record("smtp", attempt_id, vantage, active.name, action.reply, action.expected)
            if action.act is Act.SLOW:
                await asyncio.sleep(action.delay)
                return ok
            return await self._perform(server, action)
        if carried is not None:
            # slowed at an earlier stage and answered normally: the slow's outcome stands
            fault, slow = carried
            record("smtp", attempt_id, vantage, fault, slow.reply, slow.expected)
            return ok
        record("smtp", attempt_id, vantage, active.name, "250 2.0.0", Outcome.OK)
        return ok

    def authenticate(
        self,
        _server: SMTP,
        _session: Session,
        _envelope: Envelope,
        _mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        """aiosmtpd `authenticator`: LOGIN and PLAIN against smtp_user / smtp_password."""
        password = self._sim.smtp_password
        if password is None:
            return AuthResult(success=True, auth_data=auth_data)
        ok = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, self._sim.smtp_user.encode())
            and hmac.compare_digest(auth_data.password, password.encode())
        )
        # handled=False with no message: aiosmtpd answers 535 5.7.8
        return AuthResult(success=ok, handled=False)
