"""The SMTP probe: one injection per attempt (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA).

Each attempt is a whole session on a fresh connection, stopped after the configured
`depth` stage; after a successful last stage the probe sends QUIT without waiting for the
reply (a courtesy that must not change the outcome or hold the attempt open; a server
that stops reading at EOF, as aiosmtpd does, may drop a QUIT that arrives with it). The
whole-attempt deadline is ours (`asyncio.timeout`); aiosmtplib runs without timeouts of
its own, so its errors always mean the server did something.

``detail`` keys: ``stage`` (where the attempt ended or failed), ``code`` (the last
reply code), ``enhanced`` (RFC 3463 code from the reply text), ``message`` (short reply
or error text), ``error`` (exception class), ``reason`` (``starttls_not_offered``,
``auth_not_offered``, ``auth_mechanism_unsupported``), ``tls`` (the session was
encrypted). How replies and errors become outcomes: `probes.classify`.

A server that does not offer STARTTLS (or AUTH) the probe is configured to use is a
client_error, not a server_error: it is a mismatch between this probe and the platform,
which a customer configured the same way would also see, and not an outage.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import socket
import ssl
from email.header import Header
from typing import TYPE_CHECKING, Any, Literal, get_args

import aiosmtplib
from aiosmtplib import SMTP
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.schema import AsciiLine, ExistingFile, ascii_line, secret
from probes import classify
from probes.base import (
    Outcome,
    ProbeBase,
    ProbeConfigError,
    ProbeContext,
    Result,
    forget_frames,
    register,
)

if TYPE_CHECKING:
    from monitor.clock import Clock

#: the stages of a session in order; a config's `depth` names the last one to run
SmtpDepth = Literal["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data"]
STAGES: tuple[str, ...] = get_args(SmtpDepth)
SMTP_DEPTHS = STAGES

#: AUTH mechanisms in order of preference (SparkPost documents AUTH LOGIN)
AUTH_PREFERENCE: tuple[str, ...] = ("login", "plain", "cram-md5")

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII except ':'
#: a Message-ID's left part is a dot-atom: no ':' nor '@' (the id's '@' is written '=')
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
#: the X-Availmon-Attempt header is unstructured text: the id as the launcher made it
_UNSAFE_HEADER = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.:@-]")
_STAGE_INDEX = {name: i for i, name in enumerate(STAGES)}


class _Refused(Exception):
    """The server lacks an extension the probe is configured to use (a client_error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _client_ssl(config: SmtpProbeConfig) -> ssl.SSLContext | None:
    if config.tls == "none":
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file is not None else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ProbeConfigError(f"ca_file {config.ca_file}: {exc}") from None
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def quote_address(address: str) -> str:
    """``<addr>`` for MAIL FROM / RCPT TO, the address parsed out of a display form
    (``Probe <p@x>``) by the standard library, as aiosmtplib quotes it."""
    parsed = email.utils.parseaddr(address)[1]
    return f"<{parsed or address.strip()}>"


def _ascii_field(name: str, value: str) -> str:
    """The config model's own check (`monitor.schema.ascii_line`), for a config built
    without validation."""
    try:
        return ascii_line(value)
    except ValueError as exc:
        raise ProbeConfigError(f"{name}: {exc}") from None


def exception_outcome(exc: BaseException, overrides: dict[str, Outcome]) -> Outcome:
    """Outcome of an exception raised by aiosmtplib (or the TLS layer) during an attempt."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify.smtp_reply(
            exc.code, classify.parse_enhanced(exc.message), overrides, expected=False
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        # we give aiosmtplib no timeouts; it maps a TLS upgrade aborted by the peer to one
        if isinstance(exc.__cause__, ConnectionAbortedError):
            return Outcome.SERVER_ERROR
        return Outcome.TIMEOUT
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        cause = exc.__cause__
        if isinstance(cause, OSError) and not isinstance(cause, aiosmtplib.SMTPServerDisconnected):
            return classify.os_error(cause)
        return Outcome.SERVER_ERROR  # closed before the banner
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return Outcome.SERVER_ERROR  # dropped without a reply
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return Outcome.SERVER_ERROR  # TLS handshake failure (checked before ValueError)
    if isinstance(exc, OSError):
        return classify.os_error(exc)
    if isinstance(exc, _Refused):
        return Outcome.CLIENT_ERROR
    # ValueError / UnicodeError (an address or name the config should not allow),
    # SMTPException from a misuse, or a bug of ours: not the target's doing
    return Outcome.PROBE_ERROR


class SmtpProbeConfig(ProbeBase):
    type: Literal["smtp"] = "smtp"
    channel: Literal["api", "smtp", "control"] = "smtp"
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    verify_tls: bool = True
    ca_file: ExistingFile = None
    username: str | None = None
    password: SecretStr | None = None
    ehlo_name: AsciiLine | None = None
    mail_from: AsciiLine = "availmon@localhost"
    rcpt_to: AsciiLine = "probe@availmon.sink.sparkpostmail.com"
    subject: str = "availmon probe"
    #: extra headers in the probe message (e.g. X-MSYS-API for campaign ids)
    message_headers: dict[str, str] = Field(default_factory=dict)
    depth: SmtpDepth = "data"

    @field_validator("password", mode="before")
    @classmethod
    def _password(cls, v: Any) -> Any:
        return secret(v)

    @model_validator(mode="after")
    def _auth_pairs(self) -> SmtpProbeConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.depth == "starttls" and self.tls != "starttls":
            raise ValueError("depth 'starttls' needs tls = 'starttls'")
        if self.depth == "auth" and self.username is None:
            raise ValueError("depth 'auth' needs username and password")
        return self


@register("smtp")
class SmtpProbe:
    """One configured SMTP probe; `run` performs one injection."""

    config_model = SmtpProbeConfig

    def __init__(self, config: SmtpProbeConfig, clock: Clock) -> None:
        if config.reuse_connections:
            raise ProbeConfigError(
                "reuse_connections: smtp probes open a session per attempt (set it false)"
            )
        self.name: str = config.name
        self.channel: str = config.channel
        self._config = config
        self._clock = clock
        self._overrides = dict(config.classify)
        self._depth = _STAGE_INDEX[config.depth]
        self._tls = _client_ssl(config)
        self._implicit = config.tls == "implicit"
        self._starttls = config.tls == "starttls"
        self._username = config.username
        self._password = config.password.get_secret_value() if config.password else None
        self._mail_from = _ascii_field("mail_from", config.mail_from)
        self._rcpt_to = _ascii_field("rcpt_to", config.rcpt_to)
        # MAIL/RCPT arguments built once: aiosmtplib's mail()/rcpt() re-parse the address
        # with email.utils on every call, a tenth of an injection's CPU
        self._mail_arg = b"FROM:" + quote_address(self._mail_from).encode("ascii")
        self._rcpt_arg = b"TO:" + quote_address(self._rcpt_to).encode("ascii")
        self._ehlo_name = _ascii_field("ehlo_name", config.ehlo_name) if config.ehlo_name else None
        subject = config.subject
        if not subject.isascii():
            subject = Header(subject, "utf-8").encode()
        _ascii_field("subject", subject)
        extra = []
        for key, value in config.message_headers.items():
            if not _HEADER_NAME.match(key):
                raise ProbeConfigError(f"message_headers.{key}: not a valid header name")
            _ascii_field(f"message_headers.{key}", value)
            extra.append(f"{key}: {value}\r\n")
        # everything but the attempt id and the date is fixed: build it once
        self._head = f"From: {self._mail_from}\r\nTo: {self._rcpt_to}\r\nSubject: {subject}\r\n"
        self._tail = (
            "".join(extra)
            + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        )

    def message(self, attempt_id: str) -> bytes:
        """The probe message for one attempt (RFC 5322, ASCII, CRLF line ends): the id as
        it is in X-Availmon-Attempt and the body, and in the Message-ID as a dot-atom
        (``p:1795000000:1@eu-1`` → ``<p_1795000000_1=eu-1@availmon>``)."""
        header = _UNSAFE_HEADER.sub("_", attempt_id)
        safe = _UNSAFE_ID.sub("_", attempt_id.replace("@", "="))
        date = email.utils.formatdate(self._clock.wall(), usegmt=True)
        return (
            f"{self._head}Date: {date}\r\nMessage-ID: <{safe}@availmon>\r\n"
            f"X-Availmon-Attempt: {header}\r\n{self._tail}availmon probe attempt {header}\r\n"
        ).encode("ascii")

    async def _local_name(self) -> str:
        if self._ehlo_name is None:
            # once, in a thread: getfqdn may block on DNS
            self._ehlo_name = await asyncio.to_thread(socket.getfqdn)
        return self._ehlo_name

    async def run(self, ctx: ProbeContext) -> Result:
        cfg = self._config
        detail: dict[str, Any] = {}
        stage = "connect"
        ok = False
        smtp: SMTP | None = None
        deadline = asyncio.timeout(ctx.timeout)
        try:
            async with deadline:
                smtp = SMTP(
                    hostname=cfg.host,
                    port=cfg.port,
                    timeout=None,  # the whole-attempt deadline is ours
                    use_tls=self._implicit,
                    start_tls=False,  # done explicitly, as its own stage
                    tls_context=self._tls,
                    local_hostname=await self._local_name(),
                )
                reply = await smtp.connect()
                if self._implicit:
                    detail["tls"] = True
                if self._depth > 0:
                    reply = await self._session(smtp, ctx, detail)
                    stage = detail["stage"]
                ok = True
        except TimeoutError as exc:
            forget_frames(exc)
            stage = detail.get("stage", stage)
            outcome = (
                Outcome.TIMEOUT if deadline.expired() else exception_outcome(exc, self._overrides)
            )
            detail["error"] = type(exc).__name__
            detail["message"] = (
                "no reply by the deadline" if deadline.expired() else classify.short(exc)
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a probe never raises for what the target does
            forget_frames(exc)
            stage = detail.get("stage", stage)
            outcome = exception_outcome(exc, self._overrides)
            detail["error"] = type(exc).__name__
            if isinstance(exc, aiosmtplib.SMTPResponseException):
                self._reply(detail, exc.code, exc.message)
            elif isinstance(exc, _Refused):
                detail["reason"] = exc.reason
                detail["message"] = exc.reason.replace("_", " ")
            else:
                detail["message"] = classify.short(exc.args[0] if exc.args else exc)
        finally:
            if smtp is not None:
                self._finish(smtp, polite=ok)
        if ok:
            enhanced = self._reply(detail, reply.code, reply.message)
            outcome = classify.smtp_reply(reply.code, enhanced, self._overrides, expected=True)
        detail["stage"] = stage
        return Result(outcome, detail)

    async def _session(self, smtp: SMTP, ctx: ProbeContext, detail: dict[str, Any]) -> Any:
        """The stages after the banner, up to the depth; `detail["stage"]` tracks progress."""
        depth = self._depth
        detail["stage"] = "ehlo"
        reply = await smtp.ehlo()
        if depth == _STAGE_INDEX["ehlo"]:
            return reply
        if self._starttls:
            detail["stage"] = "starttls"
            if not smtp.supports_extension("starttls"):
                raise _Refused("starttls_not_offered")
            reply = await smtp.starttls(server_hostname=self._config.host)
            detail["tls"] = True
            # RFC 3207: forget what the server said before TLS, ask again
            reply = await smtp.ehlo()
        if depth == _STAGE_INDEX["starttls"]:
            return reply
        if self._username is not None and self._password is not None:
            detail["stage"] = "auth"
            reply = await self._auth(smtp, self._username, self._password)
        if depth == _STAGE_INDEX["auth"]:
            return reply
        detail["stage"] = "mail"
        reply = await smtp.execute_command(b"MAIL", self._mail_arg)
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, self._mail_from)
        if depth == _STAGE_INDEX["mail"]:
            return reply
        detail["stage"] = "rcpt"
        reply = await smtp.execute_command(b"RCPT", self._rcpt_arg)
        if reply.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, self._rcpt_to)
        if depth == _STAGE_INDEX["rcpt"]:
            return reply
        detail["stage"] = "data"
        return await smtp.data(self.message(ctx.attempt_id))

    @staticmethod
    async def _auth(smtp: SMTP, username: str, password: str) -> Any:
        if not smtp.supports_extension("auth"):
            raise _Refused("auth_not_offered")
        offered = smtp.server_auth_methods
        for mechanism in AUTH_PREFERENCE:
            if mechanism in offered:
                method = getattr(smtp, "auth_" + mechanism.replace("-", ""))
                return await method(username, password)
        raise _Refused("auth_mechanism_unsupported")

    @staticmethod
    def _reply(detail: dict[str, Any], code: int, message: str) -> str | None:
        enhanced = classify.parse_enhanced(message)
        detail["code"] = code
        if enhanced is not None:
            detail["enhanced"] = enhanced
        detail["message"] = classify.short(message)
        return enhanced

    @staticmethod
    def _finish(smtp: SMTP, *, polite: bool) -> None:
        """Close the session; after a success, QUIT first without waiting for the 221."""
        protocol = smtp.protocol
        if polite and protocol is not None and smtp.is_connected:
            try:
                protocol.write(b"QUIT\r\n")
            except Exception:  # the outcome is decided; a failed courtesy changes nothing
                pass
        smtp.close()

    async def close(self) -> None:
        """Nothing is held between attempts."""
