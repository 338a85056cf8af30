"""A real aiosmtpd server on loopback with a recording handler and injectable misbehaviour.

In the spirit of aiosmtplib's ``tests/smtpd.py``: tests set `Misbehaviour` per stage
(a reply line to send instead of the normal one, ``HANG`` to say nothing, ``DROP`` to
close the connection without a reply) and read what the server received from
`RecordingHandler`. The server runs on the test's own event loop, so nothing races.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

HANG = "hang"
DROP = "drop"

#: stages a test can make misbehave; "data" is the reply after the message's final dot,
#: "data_cmd" the reply to the DATA command itself (normally 354)
STAGES = ("banner", "ehlo", "starttls", "auth", "mail", "rcpt", "data_cmd", "data")


@dataclass
class Misbehaviour:
    """What the server does instead of the normal reply, per stage (None: behave)."""

    replies: dict[str, str] = field(default_factory=dict)

    def at(self, stage: str) -> str | None:
        return self.replies.get(stage)


@dataclass
class RecordingHandler:
    """Records every session's dialog; the last DATA reply comes from `misbehaviour`."""

    misbehaviour: Misbehaviour
    ehlo_names: list[str] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    mail_from: list[str] = field(default_factory=list)
    rcpt_to: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    connections: int = 0

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.mail_from.append(str(envelope.mail_from))
        self.rcpt_to.extend(envelope.rcpt_tos)
        content = envelope.original_content or b""
        self.messages.append(content if isinstance(content, bytes) else content.encode())
        action = self.misbehaviour.at("data")
        if action == HANG:
            await asyncio.Event().wait()
        if action == DROP:
            transport = server.transport
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            # the client sees the connection drop; nothing can be replied any more
            await asyncio.Event().wait()
        return action or "250 2.0.0 OK queued"


class MisbehavingSMTP(SMTPServer):
    """aiosmtpd's server with a hook before each stage's reply."""

    def __init__(self, handler: RecordingHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._recorder = handler

    async def _act(self, stage: str) -> bool:
        """Misbehave at `stage` if told to; True when the normal reply must be skipped."""
        action = self._recorder.misbehaviour.at(stage)
        if action is None:
            return False
        if action == HANG:
            await asyncio.Event().wait()
        if action == DROP:
            assert self.transport is not None
            self.transport.close()
            return True
        await self.push(action)
        if action.startswith("421"):
            assert self.transport is not None
            self.transport.close()
        return True

    async def _handle_client(self) -> None:
        self._recorder.connections += 1
        action = self._recorder.misbehaviour.at("banner")
        if action is None:
            await super()._handle_client()
            return
        await self._act("banner")
        if self.transport is not None:
            self.transport.close()

    async def smtp_EHLO(self, hostname: str) -> None:
        self._recorder.commands.append("EHLO")
        self._recorder.ehlo_names.append(hostname)
        if not await self._act("ehlo"):
            await super().smtp_EHLO(hostname)

    async def smtp_STARTTLS(self, arg: str) -> None:
        self._recorder.commands.append("STARTTLS")
        if not await self._act("starttls"):
            await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        self._recorder.commands.append("AUTH " + (arg or "").split(" ")[0])
        if not await self._act("auth"):
            await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:
        self._recorder.commands.append("MAIL")
        if not await self._act("mail"):
            await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        self._recorder.commands.append("RCPT")
        if not await self._act("rcpt"):
            await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        self._recorder.commands.append("DATA")
        if not await self._act("data_cmd"):
            await super().smtp_DATA(arg)

    async def smtp_QUIT(self, arg: str) -> None:
        self._recorder.commands.append("QUIT")
        await super().smtp_QUIT(arg)


@dataclass
class SmtpServer:
    """A running server: where it listens and what it recorded."""

    host: str
    port: int
    handler: RecordingHandler
    misbehaviour: Misbehaviour


def _authenticator(credentials: dict[str, str], handler: RecordingHandler) -> Any:
    def check(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        handler.logins.append((mechanism, user))
        if credentials.get(user) == password:
            return AuthResult(success=True)
        # handled=False: the server replies 535 5.7.8 itself
        return AuthResult(success=False, handled=False)

    return check


@asynccontextmanager
async def smtp_server(
    *,
    misbehaviour: Misbehaviour | None = None,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    credentials: dict[str, str] | None = None,
    auth_mechanisms_excluded: tuple[str, ...] = (),
) -> AsyncIterator[SmtpServer]:
    """Run a `MisbehavingSMTP` on 127.0.0.1 (an ephemeral port) on the running loop.

    `starttls` offers STARTTLS with that server context; `implicit_tls` wraps the
    listener in TLS from the first byte. `credentials` (user → password) turn AUTH on;
    it is allowed before TLS, as a test server may.
    """
    loop = asyncio.get_running_loop()
    behaviour = misbehaviour or Misbehaviour()
    handler = RecordingHandler(behaviour)
    kwargs: dict[str, Any] = {
        "hostname": "smtpd.test",
        "tls_context": starttls,
        # without credentials, AUTH stays unadvertised (until TLS): auth_not_offered tests
        "auth_require_tls": credentials is None,
        "auth_exclude_mechanism": list(auth_mechanisms_excluded),
        "loop": loop,
    }
    if credentials is not None:
        kwargs["authenticator"] = _authenticator(credentials, handler)
    else:
        # no authenticator and no mechanisms: the server does not advertise AUTH
        kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
    protocols: list[MisbehavingSMTP] = []

    def factory() -> MisbehavingSMTP:
        proto = MisbehavingSMTP(handler, **kwargs)
        protocols.append(proto)
        return proto

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=implicit_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield SmtpServer("127.0.0.1", port, handler, behaviour)
    finally:
        server.close()
        for proto in protocols:
            if proto.transport is not None:
                proto.transport.close()
            task = getattr(proto, "_handler_coroutine", None)
            if task is not None and not task.done():
                task.cancel()
        await asyncio.sleep(0)
        await server.wait_closed()
