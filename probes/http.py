"""The HTTP probe: one request to the platform's REST API per attempt, timed by phase.

Every attempt opens a fresh connection by default (a shared `ClientSession` whose
connector has ``force_close=True``: cheaper than a session per attempt, same wire
behaviour); ``reuse_connections = true`` keeps connections alive instead. The connector
has no pool limit, so a hung target never queues later attempts behind earlier ones.
Redirects are not followed. The first 64 KiB of the body are read, so a body that stalls
is a timeout. How replies and errors become outcomes: `probes.classify`.

``detail`` keys: ``status``, ``rate_limited`` (420/429), ``error`` (exception class),
``message`` (short), ``body_bytes``, ``phases`` (ms: ``dns``, ``connect`` — TCP and, for
https, the TLS handshake, which aiohttp does not time separately — ``processing``
(request sent → response headers) and ``transfer`` (headers → body read)).
Header values are secrets: they go on the wire and nowhere else.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from probes import classify
from probes.base import Outcome, ProbeConfigError, ProbeContext, Result, register

if TYPE_CHECKING:
    from monitor.clock import Clock
    from monitor.config import HttpProbeConfig

#: read at most this much of a body; enough to see it flow, bounded in memory and CPU
MAX_BODY = 64 * 1024

ATTEMPT_HEADER = "X-Availmon-Attempt"

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name


class _Marks:
    """Monotonic instants of one request's phases, filled by trace callbacks."""

    __slots__ = ("conn_end", "conn_start", "dns_end", "dns_start", "end", "headers", "sent")

    def __init__(self) -> None:
        self.dns_start = self.dns_end = self.conn_start = self.conn_end = 0.0
        self.sent = self.headers = self.end = 0.0

    def phases(self) -> dict[str, float]:
        out: dict[str, float] = {}
        dns = 0.0
        if self.dns_start and self.dns_end:
            dns = self.dns_end - self.dns_start
            out["dns"] = round(dns * 1000, 3)
        if self.conn_start and self.conn_end:
            # aiohttp resolves the name inside connection creation
            out["connect"] = round((self.conn_end - self.conn_start - dns) * 1000, 3)
        if self.sent and self.headers:
            out["processing"] = round((self.headers - self.sent) * 1000, 3)
        if self.headers and self.end:
            out["transfer"] = round((self.end - self.headers) * 1000, 3)
        return out


def _trace_config(now: Any) -> aiohttp.TraceConfig:
    """A TraceConfig whose callbacks stamp the `_Marks` passed as trace_request_ctx."""
    tc = aiohttp.TraceConfig()

    def stamp(field: str) -> Any:
        async def on_event(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
            setattr(ctx.trace_request_ctx, field, now())

        return on_event

    tc.on_dns_resolvehost_start.append(stamp("dns_start"))
    tc.on_dns_resolvehost_end.append(stamp("dns_end"))
    tc.on_connection_create_start.append(stamp("conn_start"))
    tc.on_connection_create_end.append(stamp("conn_end"))
    tc.on_request_headers_sent.append(stamp("sent"))
    tc.on_request_end.append(stamp("headers"))
    tc.freeze()
    return tc


def _client_ssl(verify: bool, ca_file: Any) -> ssl.SSLContext | bool:
    """The TLS settings of every connection, built once (loading a CA store costs ms)."""
    if not verify:
        return False
    if ca_file is None:
        return True  # aiohttp's own cached default context
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ProbeConfigError(f"ca_file {ca_file}: {exc}") from None


def exception_outcome(exc: BaseException) -> Outcome:
    """Outcome of an exception raised by aiohttp during one attempt (never our timeout)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Outcome.PROBE_ERROR
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return Outcome.SERVER_ERROR  # TLS handshake failure
    if isinstance(exc, aiohttp.ClientConnectorError):
        return classify.os_error(exc.os_error)
    if isinstance(exc, aiohttp.InvalidURL | ValueError | TypeError):
        return Outcome.PROBE_ERROR  # a URL or header the probe config should not allow
    if isinstance(exc, aiohttp.ClientOSError):
        return classify.os_error(exc)
    if isinstance(exc, aiohttp.ClientError):
        # disconnected, reset, truncated payload, unparsable response (garbage bytes):
        # the target answered, wrongly
        return Outcome.SERVER_ERROR
    if isinstance(exc, OSError):
        return classify.os_error(exc)
    return Outcome.PROBE_ERROR


@register("http")
class HttpProbe:
    """One configured HTTP probe; `run` performs one request."""

    def __init__(self, config: HttpProbeConfig, clock: Clock) -> None:
        self.name: str = config.name
        self.channel: str = config.channel
        self._config = config
        self._clock = clock
        self._method = config.method
        try:
            self._url = URL(config.url)
        except ValueError as exc:
            raise ProbeConfigError(f"url: {exc}") from None
        if not self._url.host:
            raise ProbeConfigError(f"url {config.url!r} has no host")
        self._headers: dict[str, str] = {}
        for key, value in config.headers.items():
            if not _TOKEN.match(key):
                raise ProbeConfigError(f"headers.{key!r}: not a valid header name")
            raw = value.get_secret_value()
            if "\r" in raw or "\n" in raw or "\0" in raw:
                # never echo the value: it may be an API key
                raise ProbeConfigError(f"headers.{key}: a header may not contain a line break")
            self._headers[key] = raw
        self._body = config.body.encode() if config.body is not None else None
        self._expect = frozenset(config.expect_status)
        self._overrides = dict(config.classify)
        self._ssl = _client_ssl(config.verify_tls, config.ca_file)
        self._trace = _trace_config(clock.monotonic)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        fresh = not self._config.reuse_connections
        connector = aiohttp.TCPConnector(
            limit=0,  # no pool limit: a hung target must not queue later attempts
            force_close=fresh,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # no state carried between attempts
            timeout=aiohttp.ClientTimeout(total=None),  # the deadline is ours
            trace_configs=[self._trace],
            auto_decompress=False,  # the body is read to see it flow, not to parse it
        )
        # aiohttp re-sends an idempotent request once, on a new connection, when the first
        # breaks before the reply (RFC 9112 §9.3.1). A customer's call that broke would
        # have failed: one attempt must be one request. aiohttp has no public switch; this
        # attribute is the one its own request loop reads (aiohttp >= 3.10).
        self._session._retry_connection = False
        return self._session

    async def run(self, ctx: ProbeContext) -> Result:
        session = self._session or self._open()
        headers = dict(self._headers)
        headers[ATTEMPT_HEADER] = ctx.attempt_id
        marks = _Marks()
        detail: dict[str, Any] = {}
        deadline = asyncio.timeout(ctx.timeout)
        try:
            async with deadline:
                async with session.request(
                    self._method,
                    self._url,
                    headers=headers,
                    data=self._body,
                    allow_redirects=False,
                    trace_request_ctx=marks,
                ) as resp:
                    status = resp.status
                    detail["status"] = status
                    read = 0
                    content = resp.content
                    while read < MAX_BODY:
                        chunk = await content.readany()
                        if not chunk:
                            break
                        read += len(chunk)
                    marks.end = self._clock.monotonic()
                    detail["body_bytes"] = read
            outcome = classify.http_status(status, self._expect, self._overrides)
            if status in classify.RATE_LIMITED_STATUSES:
                detail["rate_limited"] = True
            if outcome is not Outcome.OK:
                detail["message"] = classify.short(resp.reason or "")
        except TimeoutError as exc:
            outcome = Outcome.TIMEOUT
            detail["error"] = type(exc).__name__
            detail["message"] = "no complete response by the deadline"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a probe never raises for what the target does
            outcome = exception_outcome(exc)
            detail["error"] = type(exc).__name__
            detail["message"] = classify.short(self._describe(exc))
        phases = marks.phases()
        if phases:
            detail["phases"] = phases
        return Result(outcome, detail)

    def _describe(self, exc: BaseException) -> str:
        """A short description of an error, without the URL's password or query (which
        may hold an API key); header values never appear in aiohttp's messages."""
        if isinstance(exc, aiohttp.ClientResponseError):
            text = exc.message or type(exc).__name__
        else:
            text = str(exc) or type(exc).__name__
        for secret in (self._url.password, self._url.raw_query_string):
            if secret:
                text = text.replace(secret, "***")
        return text

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
