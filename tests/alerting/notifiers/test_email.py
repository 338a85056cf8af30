"""Email against a real aiosmtpd server with a recording handler and injectable refusals."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from alerting.notifiers import NOTIFIERS
from alerting.notifiers.base import TransportError
from alerting.notifiers.email import EmailNotifier
from monitor.clock import FakeClock
from monitor.config import ConfigError, EmailConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"pw-1234")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtpd() -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    port = free_port()
    ctl = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    ctl.start()
    try:
        yield handler, port
    finally:
        ctl.stop()


def notifier(port: int, clock: FakeClock, **kw: Any) -> EmailNotifier:
    cfg = EmailConfig(
        name="mail",
        host="127.0.0.1",
        port=port,
        tls=kw.pop("tls", "none"),
        mail_from="availmon@example.net",
        to=["oncall@example.net", "sre@example.net"],
        timeout_seconds=10,
        **kw,
    )
    n = NOTIFIERS["email"](cfg, None, clock)  # type: ignore[arg-type]
    n.validate()
    assert isinstance(n, EmailNotifier)
    return n


async def test_message_has_summary_subject_text_body_and_threads(
    smtpd: tuple[Recorder, int], clock: FakeClock, make_item: Any
) -> None:
    rec, port = smtpd
    n = notifier(port, clock, username="alerts", password="pw-1234")
    await n.send(make_item("trigger", 1))
    await n.send(make_item("resolve", 2, summary="resolved: sparkpost-us"))
    first, second = (message_from_bytes(m.original_content or b"") for m in rec.messages)
    assert rec.messages[0].rcpt_tos == ["oncall@example.net", "sre@example.net"]
    assert first["Subject"] == "[critical] sparkpost-us unavailable (trigger)"
    assert "Unavailable since 10:39:30Z" in first.get_payload()
    assert first["X-Availmon-Incident"] == "availmon/sparkpost-us/7"
    assert second["Subject"] == "resolved: sparkpost-us"
    assert second["References"] == first["Message-ID"]


@pytest.mark.parametrize(
    ("where", "reply", "permanent"),
    [
        ("rcpt", "451 4.3.0 Try again later", False),
        ("rcpt", "550 5.1.1 No such user", True),
        ("data", "452 4.3.1 Insufficient storage", False),
        ("data", "554 5.7.1 Rejected by policy", True),
    ],
    ids=["rcpt-4yz", "rcpt-5yz", "data-4yz", "data-5yz"],
)
async def test_smtp_replies_map_to_retry_or_permanent(
    smtpd: tuple[Recorder, int], clock: FakeClock, make_item: Any, where: str, reply: str,
    permanent: bool,
) -> None:  # fmt: skip
    rec, port = smtpd
    setattr(rec, f"{where}_reply", reply)
    with pytest.raises(TransportError) as err:
        await notifier(port, clock).send(make_item())
    assert err.value.permanent is permanent
    assert reply[:3] in err.value.message
    assert rec.messages == []


async def test_bad_credentials_are_permanent_and_password_hidden(
    smtpd: tuple[Recorder, int], clock: FakeClock, make_item: Any
) -> None:
    _, port = smtpd
    with pytest.raises(TransportError) as err:
        await notifier(port, clock, username="alerts", password="wrong-pw").send(make_item())
    assert err.value.permanent
    assert "535" in err.value.message
    assert "wrong-pw" not in str(err.value)


async def test_nothing_listening_is_retryable(clock: FakeClock, make_item: Any) -> None:
    with pytest.raises(TransportError) as err:
        await notifier(free_port(), clock).send(make_item())
    assert not err.value.permanent


async def test_starttls(clock: FakeClock, make_item: Any) -> None:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    rec = Recorder()
    port = free_port()
    ctl = Controller(rec, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
    ctl.start()
    try:
        # the test CA is not in the trust store; verify_tls=false is the documented way out
        await notifier(port, clock, tls="starttls", verify_tls=False).send(make_item())
    finally:
        ctl.stop()
    assert len(rec.messages) == 1


def test_validate_refuses_cleartext_password_to_a_remote_host() -> None:
    cfg = EmailConfig(
        name="mail", host="smtp.example.net", tls="none", username="u", password=SecretStr("p"),
        mail_from="a@example.net", to=["b@example.net"],
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"notifiers\.mail\.tls"):
        EmailNotifier(cfg, None, FakeClock()).validate()  # type: ignore[arg-type]
