"""Email against a real aiosmtpd server with a recording handler and injectable refusals."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from alerting.notifiers import NOTIFIERS
from alerting.notifiers.base import TransportError
from alerting.notifiers.email import EmailConfig, EmailNotifier
from monitor.clock import FakeClock
from monitor.schema import ConfigError
from tests.loopback import Recorder, free_port, mail_sink


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"pw-1234")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtpd() -> Iterator[tuple[Recorder, int]]:
    with mail_sink(authenticator=authenticator, auth_require_tls=False) as sink:
        yield sink


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
    with mail_sink(tls_context=ctx, require_starttls=True) as (rec, port):
        # the test CA is not in the trust store; verify_tls=false is the documented way out
        await notifier(port, clock, tls="starttls", verify_tls=False).send(make_item())
    assert len(rec.messages) == 1


def test_validate_refuses_cleartext_password_to_a_remote_host() -> None:
    cfg = EmailConfig(
        name="mail", host="smtp.example.net", tls="none", username="u", password=SecretStr("p"),
        mail_from="a@example.net", to=["b@example.net"],
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"notifiers\.mail\.tls"):
        EmailNotifier(cfg, None, FakeClock()).validate()  # type: ignore[arg-type]
