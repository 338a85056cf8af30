"""The SMTP probe against a real aiosmtpd server (tests/probes/smtpd.py) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monitor.clock import SystemClock
from probes import PROBES
from probes.base import Outcome, ProbeConfigError, ProbeContext, Result
from probes.smtp import SMTP_DEPTHS, STAGES, SmtpProbe, SmtpProbeConfig
from tests.probes.smtpd import DROP, HANG, Misbehaviour, SmtpServer, smtp_server

PASSWORD = "sp-api-key-fedcba9876543210"
MakeCtx = Callable[..., ProbeContext]
OK, TO, SE, CE, PE = (
    Outcome.OK,
    Outcome.TIMEOUT,
    Outcome.SERVER_ERROR,
    Outcome.CLIENT_ERROR,
    Outcome.PROBE_ERROR,
)


def probe_for(server: SmtpServer | None = None, **kwargs: Any) -> SmtpProbe:
    settings: dict[str, Any] = {"name": "smtp", "tls": "none", "ehlo_name": "probe.test"}
    if server is not None:
        settings.update(host=server.host, port=server.port)
    settings.update(kwargs)
    probe = PROBES["smtp"](SmtpProbeConfig(**settings), SystemClock())
    assert isinstance(probe, SmtpProbe)
    return probe


async def attempt(probe: SmtpProbe, ctx: ProbeContext) -> Result:
    try:
        return await probe.run(ctx)
    finally:
        await probe.close()


async def wait_for_command(server: SmtpServer, command: str) -> None:
    """Bounded wait for the server to record `command` (it arrives after run returns)."""
    for _ in range(100):
        if command in server.handler.commands:
            return
        await asyncio.sleep(0.01)


def test_registered_and_stages_match_config() -> None:
    assert PROBES["smtp"] is SmtpProbe
    assert STAGES == SMTP_DEPTHS


# ------------------------------------------------------------------- the table, one row each


ROWS: list[tuple[str, dict[str, str], Outcome, str, int | None, str | None]] = [
    # id, misbehaviour, outcome, stage, code, enhanced
    ("full-injection-ok", {}, OK, "data", 250, "2.0.0"),
    ("banner-421-server_error", {"banner": "421 Service not available"}, SE, "connect", 421, None),
    ("banner-554-client_error", {"banner": "554 No SMTP service here"}, CE, "connect", 554, None),
    (
        "banner-554-5.3.2-server_error",
        {"banner": "554 5.3.2 not accepting"},
        SE,
        "connect",
        554,
        "5.3.2",
    ),
    ("banner-hang-timeout", {"banner": HANG}, TO, "connect", None, None),
    ("banner-drop-server_error", {"banner": DROP}, SE, "connect", None, None),
    ("banner-garbage-server_error", {"banner": "SSH-2.0-OpenSSH_9.2"}, SE, "connect", -1, None),
    ("ehlo-421-4.3.2-server_error", {"ehlo": "421 4.3.2 shutting down"}, SE, "ehlo", 421, "4.3.2"),
    ("ehlo-drop-server_error", {"ehlo": DROP}, SE, "ehlo", None, None),
    ("ehlo-hang-timeout", {"ehlo": HANG}, TO, "ehlo", None, None),
    ("mail-451-4.3.0-server_error", {"mail": "451 4.3.0 internal error"}, SE, "mail", 451, "4.3.0"),
    ("mail-451-server_error", {"mail": "451 local error"}, SE, "mail", 451, None),
    ("mail-452-server_error", {"mail": "452 insufficient storage"}, SE, "mail", 452, None),
    ("mail-454-server_error", {"mail": "454 temporary failure"}, SE, "mail", 454, None),
    ("mail-other-4yz-server_error", {"mail": "432 odd transient"}, SE, "mail", 432, None),
    (
        "mail-421-4.7.0-policy-client_error",
        {"mail": "421 4.7.0 slow down"},
        CE,
        "mail",
        421,
        "4.7.0",
    ),
    ("mail-530-client_error", {"mail": "530 5.7.0 auth required"}, CE, "mail", 530, "5.7.0"),
    ("mail-500-syntax-client_error", {"mail": "500 syntax error"}, CE, "mail", 500, None),
    ("rcpt-450-client_error", {"rcpt": "450 mailbox unavailable"}, CE, "rcpt", 450, None),
    (
        "rcpt-450-4.2.1-code-decides-client_error",
        {"rcpt": "450 4.2.1 greylisted"},
        CE,
        "rcpt",
        450,
        "4.2.1",
    ),
    (
        "rcpt-452-4.2.2-code-decides-server_error",
        {"rcpt": "452 4.2.2 mailbox full"},
        SE,
        "rcpt",
        452,
        "4.2.2",
    ),
    ("rcpt-451-4.4.1-server_error", {"rcpt": "451 4.4.1 no answer"}, SE, "rcpt", 451, "4.4.1"),
    (
        "rcpt-550-5.7.1-client_error",
        {"rcpt": "550 5.7.1 Unconfigured Sending Domain"},
        CE,
        "rcpt",
        550,
        "5.7.1",
    ),
    ("rcpt-553-client_error", {"rcpt": "553 mailbox name not allowed"}, CE, "rcpt", 553, None),
    ("data-cmd-554-5.3.0-server_error", {"data_cmd": "554 5.3.0 no"}, SE, "data", 554, "5.3.0"),
    ("data-cmd-unexpected-250-server_error", {"data_cmd": "250 ok?"}, SE, "data", 250, None),
    ("data-451-4.3.0-server_error", {"data": "451 4.3.0 try later"}, SE, "data", 451, "4.3.0"),
    ("data-554-client_error", {"data": "554 transaction failed"}, CE, "data", 554, None),
    (
        "data-554-5.3.4-server_error",
        {"data": "554 5.3.4 too big for system"},
        SE,
        "data",
        554,
        "5.3.4",
    ),
    ("data-550-5.7.1-client_error", {"data": "550 5.7.1 rejected"}, CE, "data", 550, "5.7.1"),
    ("data-hang-timeout", {"data": HANG}, TO, "data", None, None),
    ("data-drop-server_error", {"data": DROP}, SE, "data", None, None),
]


@pytest.mark.parametrize(
    ("replies", "outcome", "stage", "code", "enhanced"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
async def test_reply_table(
    make_ctx: MakeCtx,
    replies: dict[str, str],
    outcome: Outcome,
    stage: str,
    code: int | None,
    enhanced: str | None,
) -> None:
    async with smtp_server(misbehaviour=Misbehaviour(replies)) as server:
        # short only where a hang is expected: every earlier stage must still pass in time
        result = await attempt(
            probe_for(server), make_ctx(1.0 if HANG in replies.values() else 10.0)
        )
    assert result.outcome is outcome, result.detail
    assert result.detail["stage"] == stage
    assert result.detail.get("code") == code
    assert result.detail.get("enhanced") == enhanced
    assert result.detail["message"]


async def test_connection_refused_is_server_error(make_ctx: MakeCtx) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await attempt(probe_for(host="127.0.0.1", port=port), make_ctx())
    assert result.outcome is SE
    assert result.detail["stage"] == "connect"
    assert result.detail["error"] == "SMTPConnectError"


async def test_dns_failure_is_probe_error(make_ctx: MakeCtx) -> None:
    result = await attempt(probe_for(host="availmon-test.invalid", port=25), make_ctx())
    assert result.outcome is PE
    assert result.detail["stage"] == "connect"


# ------------------------------------------------------------------------------- depth


@pytest.mark.parametrize(
    ("depth", "commands"),
    [
        ("connect", []),
        ("ehlo", ["EHLO"]),
        ("auth", ["EHLO", "AUTH LOGIN"]),
        ("mail", ["EHLO", "AUTH LOGIN", "MAIL"]),
        ("rcpt", ["EHLO", "AUTH LOGIN", "MAIL", "RCPT"]),
        ("data", ["EHLO", "AUTH LOGIN", "MAIL", "RCPT", "DATA"]),
    ],
    ids=["connect", "ehlo", "auth", "mail", "rcpt", "data"],
)
async def test_depth_stops_after_its_stage(
    make_ctx: MakeCtx, depth: str, commands: list[str]
) -> None:
    creds = {"SMTP_Injection": PASSWORD}
    async with smtp_server(credentials=creds) as server:
        probe = probe_for(server, depth=depth, username="SMTP_Injection", password=PASSWORD)
        result = await attempt(probe, make_ctx())
        await wait_for_command(server, "QUIT")
    assert result.outcome is OK, result.detail
    assert result.detail["stage"] == depth
    # the courtesy QUIT follows a success and is not part of the dialog checked
    assert server.handler.commands == [*commands, "QUIT"]
    assert len(server.handler.messages) == (1 if depth == "data" else 0)


async def test_depth_starttls(make_ctx: MakeCtx, server_tls: ssl.SSLContext, ca_file: Path) -> None:
    async with smtp_server(starttls=server_tls) as server:
        probe = probe_for(server, tls="starttls", ca_file=ca_file, depth="starttls")
        result = await attempt(probe, make_ctx())
    assert result.outcome is OK, result.detail
    assert result.detail["stage"] == "starttls"
    assert result.detail["tls"] is True
    assert server.handler.commands[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert "MAIL" not in server.handler.commands


# ------------------------------------------------------------------------ the message


async def test_message_headers_and_envelope(make_ctx: MakeCtx) -> None:
    async with smtp_server() as server:
        probe = probe_for(
            server,
            mail_from="probe@example.test",
            rcpt_to="probe@availmon.sink.sparkpostmail.com",
            subject="availmon probe",
            message_headers={"X-MSYS-API": '{"campaign_id":"sparkpost-performance-test-x"}'},
        )
        ctx = make_ctx()
        result = await attempt(probe, ctx)
    assert result.outcome is OK
    handler = server.handler
    assert handler.ehlo_names == ["probe.test"]
    assert handler.mail_from == ["probe@example.test"]
    assert handler.rcpt_to == ["probe@availmon.sink.sparkpostmail.com"]
    (raw,) = handler.messages
    msg = email.message_from_bytes(raw)
    assert msg["X-Availmon-Attempt"] == ctx.attempt_id
    assert msg["Message-ID"] == f"<{ctx.attempt_id}@availmon>"
    assert msg["From"] == "probe@example.test"
    assert msg["To"] == "probe@availmon.sink.sparkpostmail.com"
    assert msg["Subject"] == "availmon probe"
    assert msg["X-MSYS-API"] == '{"campaign_id":"sparkpost-performance-test-x"}'
    assert email.utils.parsedate_to_datetime(msg["Date"]).tzinfo is not None


async def test_a_launcher_id_travels_whole_in_the_header_and_as_a_dot_atom_in_message_id(
    make_ctx: MakeCtx,
) -> None:
    """`probe:second:slot@vantage` (monitor/launcher.py) in X-Availmon-Attempt as it is, in
    the Message-ID with ':' → '_' and '@' → '=', and the simulator reads either back."""
    from monitor.simulator.ledger import attempt_vantage, parse_attempt_id
    from monitor.simulator.smtp import message_keys

    async with smtp_server() as server:
        base = make_ctx()
        ctx = dataclasses.replace(base, attempt_id=f"smtp-main:{base.second}:1@eu-west.2")
        result = await attempt(probe_for(server), ctx)
    assert result.outcome is OK
    (raw,) = server.handler.messages
    msg = email.message_from_bytes(raw)
    assert msg["X-Availmon-Attempt"] == f"smtp-main:{base.second}:1@eu-west.2"
    assert msg["Message-ID"] == f"<smtp-main_{base.second}_1=eu-west.2@availmon>"
    for form in (msg["X-Availmon-Attempt"], msg["Message-ID"][1 : -len("@availmon>")]):
        assert parse_attempt_id(form) == ("smtp-main", base.second, 1), form
        assert attempt_vantage(form) == "eu-west.2", form
    assert message_keys(raw)[0] == ctx.attempt_id


def test_message_id_is_sanitised() -> None:
    probe = probe_for(host="127.0.0.1")
    raw = probe.message("a b<c>@d\r\nX-Injected: 1").decode()
    assert "X-Injected: 1" not in raw.split("\r\n")
    assert "Message-ID: <a_b_c_=d__X-Injected__1@availmon>" in raw
    assert "X-Availmon-Attempt: a_b_c_@d__X-Injected:_1\r\n" in raw


def test_non_ascii_subject_is_encoded() -> None:
    raw = probe_for(host="127.0.0.1", subject="Sonde réussie").message("x").decode("ascii")
    assert "Subject: =?utf-8?" in raw


# -------------------------------------------------------------------------- TLS and AUTH


async def test_starttls_full_injection(
    make_ctx: MakeCtx, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    async with smtp_server(starttls=server_tls) as server:
        probe = probe_for(server, tls="starttls", ca_file=ca_file)
        result = await attempt(probe, make_ctx())
    assert result.outcome is OK, result.detail
    assert result.detail["tls"] is True
    assert len(server.handler.messages) == 1


async def test_starttls_not_offered_is_client_error(make_ctx: MakeCtx, ca_file: Path) -> None:
    async with smtp_server() as server:
        result = await attempt(probe_for(server, tls="starttls", ca_file=ca_file), make_ctx())
    assert result.outcome is CE
    assert result.detail["stage"] == "starttls"
    assert result.detail["reason"] == "starttls_not_offered"


async def test_starttls_refused_454_is_server_error(
    make_ctx: MakeCtx, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    behaviour = Misbehaviour({"starttls": "454 TLS not available due to temporary reason"})
    async with smtp_server(starttls=server_tls, misbehaviour=behaviour) as server:
        result = await attempt(probe_for(server, tls="starttls", ca_file=ca_file), make_ctx())
    assert result.outcome is SE
    assert result.detail["stage"] == "starttls"
    assert result.detail["code"] == 454


async def test_starttls_untrusted_cert_is_server_error(
    make_ctx: MakeCtx, foreign_tls: ssl.SSLContext, ca_file: Path
) -> None:
    async with smtp_server(starttls=foreign_tls) as server:
        result = await attempt(probe_for(server, tls="starttls", ca_file=ca_file), make_ctx())
    assert result.outcome is SE
    assert result.detail["stage"] == "starttls"
    assert result.detail["error"] == "SSLCertVerificationError"


async def test_starttls_verify_off_accepts_foreign_cert(
    make_ctx: MakeCtx, foreign_tls: ssl.SSLContext
) -> None:
    async with smtp_server(starttls=foreign_tls) as server:
        result = await attempt(probe_for(server, tls="starttls", verify_tls=False), make_ctx())
    assert result.outcome is OK, result.detail


async def test_implicit_tls_injection(
    make_ctx: MakeCtx, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    async with smtp_server(implicit_tls=server_tls) as server:
        result = await attempt(probe_for(server, tls="implicit", ca_file=ca_file), make_ctx())
    assert result.outcome is OK, result.detail
    assert result.detail["tls"] is True


async def test_implicit_tls_depth_connect_reports_tls(
    make_ctx: MakeCtx, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    async with smtp_server(implicit_tls=server_tls) as server:
        probe = probe_for(server, tls="implicit", ca_file=ca_file, depth="connect")
        result = await attempt(probe, make_ctx())
    assert result.outcome is OK, result.detail
    assert (result.detail["stage"], result.detail["code"], result.detail["tls"]) == (
        "connect",
        220,
        True,
    )


async def test_implicit_tls_to_plain_port_is_server_error(make_ctx: MakeCtx, ca_file: Path) -> None:
    async with smtp_server() as server:
        result = await attempt(probe_for(server, tls="implicit", ca_file=ca_file), make_ctx())
    assert result.outcome is SE
    assert result.detail["stage"] == "connect"


async def test_auth_login_as_sparkpost(make_ctx: MakeCtx) -> None:
    async with smtp_server(credentials={"SMTP_Injection": PASSWORD}) as server:
        probe = probe_for(server, username="SMTP_Injection", password=PASSWORD)
        result = await attempt(probe, make_ctx())
    assert result.outcome is OK, result.detail
    assert server.handler.logins == [("LOGIN", "SMTP_Injection")]
    assert PASSWORD not in repr(result.detail)


async def test_starttls_then_auth_login_as_on_sparkpost(
    make_ctx: MakeCtx, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    creds = {"SMTP_Injection": PASSWORD}
    async with smtp_server(starttls=server_tls, credentials=creds) as server:
        probe = probe_for(
            server, tls="starttls", ca_file=ca_file, username="SMTP_Injection", password=PASSWORD
        )
        result = await attempt(probe, make_ctx())
    assert result.outcome is OK, result.detail
    # (the courtesy QUIT is not checked: over TLS it arrives with the close_notify, and
    # aiosmtpd stops reading at EOF)
    assert server.handler.commands[:7] == [
        "EHLO",
        "STARTTLS",
        "EHLO",
        "AUTH LOGIN",
        "MAIL",
        "RCPT",
        "DATA",
    ]
    assert PASSWORD not in repr(result.detail)


async def test_auth_plain_when_login_not_offered(make_ctx: MakeCtx) -> None:
    async with smtp_server(
        credentials={"u": PASSWORD}, auth_mechanisms_excluded=("LOGIN",)
    ) as server:
        result = await attempt(probe_for(server, username="u", password=PASSWORD), make_ctx())
    assert result.outcome is OK, result.detail
    assert server.handler.logins == [("PLAIN", "u")]


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (None, CE),
        ("454 4.7.0 Temporary authentication failure", CE),
        ("454 4.3.0 Temporary authentication failure", SE),
    ],
    ids=["bad-password-535-client_error", "454-4.7.0-client_error", "454-4.3.0-server_error"],
)
async def test_auth_failures(make_ctx: MakeCtx, reply: str | None, outcome: Outcome) -> None:
    behaviour = Misbehaviour({"auth": reply} if reply else {})
    async with smtp_server(credentials={"u": "other"}, misbehaviour=behaviour) as server:
        result = await attempt(probe_for(server, username="u", password=PASSWORD), make_ctx())
    assert result.outcome is outcome
    assert result.detail["stage"] == "auth"
    assert PASSWORD not in repr(result.detail)
    if reply is None:
        assert (result.detail["code"], result.detail["enhanced"]) == (535, "5.7.8")


async def test_auth_not_offered_is_client_error(make_ctx: MakeCtx) -> None:
    async with smtp_server() as server:
        result = await attempt(probe_for(server, username="u", password=PASSWORD), make_ctx())
    assert result.outcome is CE
    assert result.detail["reason"] == "auth_not_offered"
    assert PASSWORD not in repr(result.detail)


# ------------------------------------------------------------------- overrides and config


@pytest.mark.parametrize(
    ("reply", "classify", "outcome"),
    [
        ("421 4.3.2 busy", {"421": "client_error"}, CE),
        ("421 busy", {"421": "client_error"}, CE),
        ("421 4.3.2 busy", {"4.3": "client_error"}, CE),
        ("421 4.3.2 busy", {"4.3": "client_error", "4.3.2": "timeout"}, TO),
        ("550 5.7.1 blocked", {"5xx": "server_error"}, SE),
        ("550 5.7.1 blocked", {"5xx": "server_error", "550": "ok"}, OK),
    ],
    ids=[
        "code-override-beats-enhanced-default",
        "exact-code",
        "enhanced-prefix",
        "exact-enhanced-beats-prefix",
        "class",
        "code-beats-class",
    ],
)
async def test_overrides(
    make_ctx: MakeCtx, reply: str, classify: dict[str, str], outcome: Outcome
) -> None:
    async with smtp_server(misbehaviour=Misbehaviour({"mail": reply})) as server:
        result = await attempt(probe_for(server, classify=classify), make_ctx())
    assert result.outcome is outcome


def test_reuse_connections_is_refused() -> None:
    with pytest.raises(ProbeConfigError, match="reuse_connections"):
        probe_for(host="127.0.0.1", reuse_connections=True)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mail_from": "prøbe@example.test"}, "mail_from"),
        ({"rcpt_to": "a@b\r\nRCPT TO:<c@d>"}, "rcpt_to"),
        ({"message_headers": {"Bad Name": "v"}}, "message_headers"),
        ({"message_headers": {"X-Ok": "line\r\nbreak"}}, "message_headers"),
    ],
    ids=["non-ascii-sender", "injected-recipient", "bad-header-name", "header-line-break"],
)
def test_bad_fields_fail_at_construction(kwargs: dict[str, Any], field: str) -> None:
    """Rejected by the config model where it can tell (what check-config and run report),
    and by the constructor for a config that skipped validation (model_construct)."""
    if field != "message_headers":
        with pytest.raises(ValidationError, match=field):
            SmtpProbeConfig(name="smtp", host="127.0.0.1", **kwargs)
        unchecked = SmtpProbeConfig.model_construct(name="smtp", host="127.0.0.1", **kwargs)
        with pytest.raises(ProbeConfigError, match=field):
            SmtpProbe(unchecked, SystemClock())
        return
    with pytest.raises(ProbeConfigError, match=field):
        probe_for(host="127.0.0.1", **kwargs)
