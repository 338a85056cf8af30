"""Email through an SMTP relay (aiosmtplib): subject = the event's summary, body = its text.

All messages of one incident share a thread: the trigger's Message-ID is
``<availmon.{service}.{incident id}@{sender domain}>`` and every later event refers to it.
SMTP 4yz replies, timeouts and dropped connections are retried; 5yz replies (bad
credentials, refused sender or recipients) and a missing STARTTLS/AUTH are permanent.
A message some but not all recipients accepted counts as sent (a retry would duplicate
it for the others).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formatdate
from typing import ClassVar, Literal

import aiohttp
import aiosmtplib
from pydantic import Field, SecretStr, field_validator

from alerting.model import OutboxItem
from alerting.notifiers.base import EVENTS, NotifierBase, Payload, TransportError, clip, redact
from monitor.clock import Clock
from monitor.schema import ConfigError, secret


class EmailConfig(NotifierBase):
    type: Literal["email"] = "email"
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    verify_tls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    mail_from: str
    to: list[str] = Field(min_length=1)
    _sec = field_validator("password", mode="before")(classmethod(lambda cls, v: secret(v)))


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _classify(exc: Exception, where: str, secrets: list[str]) -> TransportError:
    """An aiosmtplib error as a TransportError: 4yz and network trouble are retryable."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return TransportError(
            f"SMTP {where} refused every recipient: {clip(text, 300)}",
            permanent=not any(400 <= c < 500 for c in codes),
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        message = clip(redact(" ".join(exc.message.split()), secrets), 300)
        return TransportError(
            f"SMTP {exc.code} from {where}: {message}", permanent=not 400 <= exc.code < 500
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return TransportError(f"SMTP {where}: {exc}", permanent=True)
    detail = clip(redact(str(exc), secrets), 300) or "no detail"
    return TransportError(f"SMTP {where}: {type(exc).__name__}: {detail}")


async def send_via(config: EmailConfig, message: EmailMessage) -> None:
    """Send one message with an `email` notifier's SMTP settings (also the monthly reports)."""
    await aiosmtplib.send(
        message,
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password.get_secret_value() if config.password else None,
        use_tls=config.tls == "implicit",
        start_tls=config.tls == "starttls",
        validate_certs=config.verify_tls,
        timeout=config.timeout_seconds,
    )


class EmailNotifier:
    type = "email"
    config_model = EmailConfig
    handlers: ClassVar[frozenset[str]] = frozenset(EVENTS)

    def __init__(self, config: EmailConfig, session: aiohttp.ClientSession, clock: Clock):
        # the session is unused: the registry builds every notifier the same way
        self.config = config
        self.name = config.name
        self.clock = clock

    def validate(self) -> None:
        c = self.config
        if c.username is not None and c.password is None:
            raise ConfigError(f"notifiers.{self.name}.password: needed with username")
        if c.username is not None and c.tls == "none" and c.host not in _LOOPBACK:
            raise ConfigError(
                f"notifiers.{self.name}.tls: 'none' would send the password in clear to "
                f"{c.host}; use starttls or implicit"
            )

    def _secrets(self) -> list[str]:
        return [self.config.password.get_secret_value()] if self.config.password else []

    def message(self, item: OutboxItem, payload: Payload) -> EmailMessage:
        c = self.config
        domain = c.mail_from.rpartition("@")[2] or "availmon"
        thread = f"<availmon.{payload.service}.{item.incident_id}@{domain}>"
        msg = EmailMessage()
        msg["Subject"] = clip(payload.summary, 200)
        msg["From"] = c.mail_from
        msg["To"] = ", ".join(c.to)
        msg["Date"] = format_datetime(datetime.fromtimestamp(self.clock.wall(), UTC))
        if item.event == "trigger":
            msg["Message-ID"] = thread
        else:
            # stable per event, so a retried message can be recognised as the same one
            msg["Message-ID"] = (
                f"<availmon.{payload.service}.{item.incident_id}.{payload.seq}.{item.event}@{domain}>"
            )
            msg["In-Reply-To"] = thread
            msg["References"] = thread
        msg["X-Availmon-Incident"] = payload.dedup_key
        msg["X-Availmon-Event"] = item.event
        facts = "\n".join(
            f"{k}: {v}" for k, v in payload.incident.items() if v is not None and k != "summary"
        )
        sent = formatdate(payload.at, usegmt=True)
        msg.set_content(f"{payload.text}\n\n--\n{facts}\nevent at {sent} from {payload.vantage}\n")
        return msg

    async def send(self, item: OutboxItem) -> None:
        if item.event not in self.handlers:
            raise TransportError(
                f"email notifier has no mapping for event {item.event!r}", permanent=True
            )
        payload = Payload.of(item)
        c = self.config
        where = f"{c.host}:{c.port}"
        try:
            await send_via(c, self.message(item, payload))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise _classify(exc, where, self._secrets()) from None

    async def close(self) -> None:
        """Every send opens its own SMTP connection; nothing stays open."""
