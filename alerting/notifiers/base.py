"""The notifier contract, its one error type, and the shared JSON-over-HTTP transport.

A notifier turns one outbox item (an incident event) into one vendor call. It holds no
incident state machine (that is `alerting/policy.py`) and never retries by itself: it
raises `TransportError` and the outbox dispatcher decides when to try again.

Exception tree::

    TransportError(message, permanent, retry_after)
        a send that did not go through. permanent=False: try again later (after
        retry_after seconds when the receiver said so, e.g. HTTP 429 Retry-After);
        permanent=True: the receiver refused it, resending the same thing cannot help.

Status mapping of `post_bytes` / `post_json`: 2xx ok (a notifier may narrow it, Slack
wants exactly 200); 429 retryable with Retry-After (seconds or an HTTP date); 408, 5xx,
connection errors and timeouts retryable; any other status permanent. Error messages name
the receiver's origin only (scheme://host:port, never the path, which for Slack is the
secret) and have every configured secret blanked out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import aiohttp
from pydantic import Field
from yarl import URL

from alerting.model import OutboxItem
from monitor.clock import Clock
from monitor.schema import ConfigModel

#: the events the incident policy emits; notifiers map each one to a vendor action
EVENTS = ("trigger", "update", "acknowledge", "recover", "resolve")

_SNIPPET = 300  # characters of a receiver's error body kept in the message


Tier = Literal["critical", "escalation", "ticket"]


class NotifierBase(ConfigModel):
    """What every notifier's config has; each notifier type subclasses it beside its code."""

    #: the registry key; each subclass narrows it to its own Literal
    type: str
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    tiers: list[Tier] = Field(default_factory=lambda: list[Tier](["critical"]), min_length=1)
    #: services whose incidents this notifier receives (None: all)
    services: list[str] | None = None
    timeout_seconds: float = Field(default=10, gt=0, le=120)
    #: give up (and record a permanent failure) after this many tries
    max_tries: int = Field(default=12, ge=1, le=1000)
    #: pages (critical and escalation tiers) wait at most this long between tries
    page_retry_max_seconds: float = Field(default=10, gt=0, le=3600)
    #: and are given up only after max_tries *and* this long (seconds since queued)
    page_give_up_after_seconds: float = Field(default=3600, ge=0, le=7 * 86400)


class TransportError(Exception):
    """A delivery failed; `permanent` says whether trying again can help."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class Notifier(Protocol):
    """One configured receiver. Built as ``NOTIFIERS[cfg.type](cfg, session, clock)``."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> NotifierBase: ...

    def validate(self) -> None:
        """Raise `monitor.config.ConfigError` (one line) for a config that cannot work."""
        ...

    async def send(self, item: OutboxItem) -> None:
        """Deliver one event; raise `TransportError` when it did not go through."""
        ...

    async def close(self) -> None: ...


class NotifierType(Protocol):
    """A notifier implementation as the registry holds it: the class, carrying its model."""

    @property
    def config_model(self) -> type[NotifierBase]: ...

    def __call__(
        self, config: Any, session: aiohttp.ClientSession, clock: Clock, /
    ) -> Notifier: ...


@runtime_checkable
class Restorable(Protocol):
    """A notifier that keeps state across events (Alertmanager's active alerts)."""

    def restore(self, sent: Sequence[OutboxItem]) -> None:
        """Rebuild that state from the items it delivered before a restart, in id order."""
        ...


@dataclass(frozen=True, slots=True)
class Payload:
    """An outbox item's payload as every notifier reads it, checked once (not named
    Notice: that is the policy's "send event X to tier Y" in `alerting.escalation`).

    Schema (written by the incident policy): ``{"seq", "event", "tier",
    "incident": {id, service, severity, state, kind, dedup_key, opened_at, ...},
    "summary", "text", "at", "vantage"}``, and on the trigger of a Critical Issue
    ``"case"``, the Sev-1 case sheet as text (alerting/case.py), which `text` ends with."""

    event: str
    seq: int
    tier: str
    incident: Mapping[str, Any]
    dedup_key: str
    service: str
    severity: str
    summary: str
    text: str
    at: float
    vantage: str

    @classmethod
    def of(cls, item: OutboxItem) -> Payload:
        p = item.payload
        inc = p.get("incident")
        if not isinstance(inc, Mapping):
            raise TransportError("malformed outbox payload: no 'incident' object", permanent=True)
        missing = [k for k in ("dedup_key", "service", "severity") if not inc.get(k)]
        if missing:
            raise TransportError(
                f"malformed outbox payload: incident lacks {', '.join(missing)}", permanent=True
            )
        summary = str(p.get("summary") or inc.get("summary") or f"availmon: {inc['service']}")
        text = str(p.get("text") or summary)
        if p.get("case"):
            text = f"{text}\n\n{p['case']}"
        return cls(
            event=item.event,
            seq=int(p.get("seq", 0)),
            tier=str(p.get("tier", "critical")),
            incident=inc,
            dedup_key=str(inc["dedup_key"]),
            service=str(inc["service"]),
            severity=str(inc["severity"]),
            # one line: vendors show it as a title
            summary=" ".join(summary.split()),
            text=text,
            at=float(p.get("at", item.created_at)),
            vantage=str(p.get("vantage") or "availmon"),
        )


def rfc3339(epoch: float) -> str:
    """2026-11-23T10:40:00.000Z"""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def clip(text: str, limit: int) -> str:
    """Shorten to `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit_key(key: str, limit: int) -> str:
    """A dedup key within a vendor's length limit, still unique and stable per incident."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: limit - len(digest) - 1]}#{digest}"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def origin(url: str | URL) -> str:
    """scheme://host:port of a URL: safe to log, unlike a path that may hold a token."""
    u = URL(url) if isinstance(url, str) else url
    try:
        return str(u.origin())
    except ValueError:
        return "<bad url>"


def redact(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:  # blanking a 1-3 character "secret" would mangle the message
            text = text.replace(s, "***")
    return text


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


async def post_bytes(
    session: aiohttp.ClientSession,
    url: str | URL,
    data: bytes,
    *,
    clock: Clock,
    timeout: float,  # noqa: ASYNC109 (the per-request aiohttp timeout, not a cancel scope)
    headers: Mapping[str, str] | None = None,
    ok: Collection[int] | None = None,
    secrets: Iterable[str] = (),
) -> tuple[int, str]:
    """POST a JSON body; return (status, body text) or raise `TransportError`."""
    hdrs = {"Content-Type": "application/json", "User-Agent": "availmon"}
    hdrs.update(headers or {})
    secrets = [s for s in secrets if s]
    where = origin(url)
    try:
        async with session.post(
            url,
            data=data,
            headers=hdrs,
            timeout=aiohttp.ClientTimeout(total=timeout),
            # a redirect of a POST is a misconfiguration, and following it would replay
            # the request (and its auth header) somewhere else
            allow_redirects=False,
        ) as resp:
            raw = await resp.content.read(4096)
            body = raw.decode("utf-8", "replace")
            status = resp.status
            retry_after_header = resp.headers.get("Retry-After")
    except TimeoutError:
        raise TransportError(f"no reply from {where} within {timeout:g}s") from None
    except aiohttp.InvalidURL:
        raise TransportError(f"invalid URL for {where}", permanent=True) from None
    except (aiohttp.ClientError, OSError) as exc:
        detail = redact(str(exc), secrets) or type(exc).__name__
        raise TransportError(
            f"cannot reach {where}: {type(exc).__name__}: {clip(detail, _SNIPPET)}"
        ) from None
    good = ok if ok is not None else range(200, 300)
    if status in good:
        return status, body
    snippet = clip(redact(" ".join(body.split()), secrets), _SNIPPET)
    message = f"HTTP {status} from {where}" + (f": {snippet}" if snippet else "")
    if status == 429 or status == 408 or status >= 500:
        retry_after = parse_retry_after(retry_after_header, clock.wall())
        raise TransportError(message, permanent=False, retry_after=retry_after)
    raise TransportError(message, permanent=True)


async def post_json(
    session: aiohttp.ClientSession,
    url: str | URL,
    body: Any,
    **kwargs: Any,
) -> tuple[int, str]:
    """`post_bytes` of `body` serialised as compact UTF-8 JSON."""
    return await post_bytes(session, url, encode_json(body), **kwargs)


class HttpNotifier:
    """Shared constructor and transport for the notifiers that speak JSON over HTTP.

    Subclasses map each event to a coroutine in `handlers`; an event a vendor has no
    use for maps to `skip` and counts as delivered."""

    type: ClassVar[str]
    #: event → method name of the subclass
    handlers: ClassVar[Mapping[str, str]]

    def __init__(self, config: NotifierBase, session: aiohttp.ClientSession, clock: Clock):
        self.config = config
        self.name = config.name
        self.session = session
        self.clock = clock

    def validate(self) -> None:
        """The pydantic model already checked types; subclasses add semantic checks."""

    def secrets(self) -> list[str]:
        """Values to blank out of any error message."""
        return []

    async def send(self, item: OutboxItem) -> None:
        method = self.handlers.get(item.event)
        if method is None:
            raise TransportError(
                f"{self.type} notifier has no mapping for event {item.event!r}", permanent=True
            )
        payload = Payload.of(item)
        await getattr(self, method)(item, payload)

    async def skip(self, item: OutboxItem, payload: Payload) -> None:
        """An event this vendor does not need (documented per notifier)."""

    async def post(
        self,
        url: str | URL,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        ok: Collection[int] | None = None,
    ) -> tuple[int, str]:
        return await post_json(
            self.session,
            url,
            body,
            clock=self.clock,
            timeout=self.config.timeout_seconds,
            headers=headers,
            ok=ok,
            secrets=self.secrets(),
        )

    async def close(self) -> None:
        """The session belongs to the caller; nothing to release by default."""
