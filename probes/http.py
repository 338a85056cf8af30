"""The HTTP probe: one request to the platform's REST API per attempt, timed by phase.

Every attempt opens a fresh connection by default, through a lean path: the request
bytes built once per probe (byte for byte what aiohttp sends with a fresh connection),
written on the socket itself (http) or a TLS transport from ``loop.create_connection``
(https); the response parsed by aiohttp's own C parser (`HttpResponseParser`, fed as
aiohttp's `ResponseHandler` feeds it); failures raised as the aiohttp exceptions a
`ClientSession` raises for them. It costs ~0.3-0.5 ms less CPU per attempt than a
session, about half of it (bench/attempt_cost.py).
``reuse_connections = true`` goes through a shared `ClientSession` that keeps connections
alive (no pool limit, so a hung target never queues later attempts behind earlier ones).
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
import socket
import ssl
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, cast

import aiohappyeyeballs
import aiohttp
from aiohttp import ClientRequest, StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import Field, SecretStr, field_validator
from yarl import URL

from monitor.schema import ExistingFile, HttpUrl, header_names, is_token, secret_map
from probes import classify
from probes import compat_aiohttp as compat
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

#: read at most this much of a body; enough to see it flow, bounded in memory and CPU
MAX_BODY = 64 * 1024

ATTEMPT_HEADER = "X-Availmon-Attempt"

#: how long a resolved address list is used, as aiohttp's connector caches it by default
DNS_TTL = 10.0

#: aiohttp's defaults for the delay before a second address is tried (RFC 8305)
HAPPY_EYEBALLS_DELAY = 0.25

#: aiohttp's own flow-control limit of a response body buffer
READ_BUFSIZE = 2**16


class HttpProbeConfig(ProbeBase):
    type: Literal["http"] = "http"
    channel: Literal["api", "smtp", "control"] = "api"
    url: HttpUrl
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] = "GET"
    #: header values may be secrets (`env:NAME`), e.g. Authorization = "env:SPARKPOST_API_KEY"
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    body: str | None = None
    expect_status: list[int] = Field(default_factory=lambda: list(range(200, 300)))
    verify_tls: bool = True
    ca_file: ExistingFile = None

    _hdr = field_validator("headers", mode="before")(classmethod(lambda cls, v: secret_map(v)))
    _hdr_names = field_validator("headers")(classmethod(lambda cls, v: header_names(v)))

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 100 <= s <= 599]
        if bad or not v:
            raise ValueError("expect_status needs HTTP status codes between 100 and 599")
        return v


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


def _lean_ssl(verify: bool, session_ssl: ssl.SSLContext | bool) -> ssl.SSLContext:
    """The TLS context of the lean path, built as aiohttp builds its own defaults."""
    if isinstance(session_ssl, ssl.SSLContext):
        return session_ssl  # verify against ca_file: the very context the session uses
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(("http/1.1",))
    return context


#: replies that never have a body, whatever their headers say (RFC 9110 §6.4.1)
EMPTY_BODY_STATUS_CODES = frozenset((204, 304, *range(100, 200)))

#: the User-Agent aiohttp sends (aiohttp.http.SERVER_SOFTWARE, built the same way)
SERVER_SOFTWARE = (
    f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{aiohttp.__version__}"
)


class _Exchange(compat.BaseProtocol):
    """One request's response on one fresh connection, parsed by aiohttp's C parser.

    Driven as aiohttp's `ResponseHandler` drives it: bytes in, (message, payload) out;
    interim 1xx replies skipped; a parse error before the headers fails `response`
    (the caller raises `ClientResponseError`), after them the payload; the connection
    lost before the headers is `ServerDisconnectedError` (clean close) or `ClientOSError`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, head: bool, now: Any) -> None:
        super().__init__(loop)
        self._parser = compat.HttpResponseParser(
            self,
            loop,
            READ_BUFSIZE,
            payload_exception=aiohttp.ClientPayloadError,
            response_with_body=not head,  # a reply to HEAD has headers only
            read_until_eof=True,  # a body without length or chunking ends at close
            auto_decompress=False,  # the body is read to see it flow, not to parse it
        )
        self._now = now
        self.response: asyncio.Future[tuple[Any, StreamReader]] = loop.create_future()
        self.payload: StreamReader | None = None
        self.headers_at = 0.0
        self.broken = False  # unparsable bytes: nothing more is read
        self.lost = False  # the connection ended

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # no TCP_NODELAY (aiohttp sets it): the whole request goes in one write, which
        # Nagle never delays, and the setsockopt is one syscall per attempt saved
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.broken or self._parser is None:
            return
        try:
            messages, _upgraded, _tail = self._parser.feed_data(data)
        except Exception as exc:  # not HTTP (garbage bytes), or a broken body encoding
            self.broken = True
            if self.transport is not None:
                self.transport.close()
            self._fail(exc)
            return
        for message, payload in messages:
            if self.response.done():
                break  # bytes after the one response this connection carries
            code = message.code
            if 100 <= code < 200 and code != 101:
                continue  # interim reply (100 Continue, 103 Early Hints)
            self.headers_at = self._now()
            if code in EMPTY_BODY_STATUS_CODES:
                payload = compat.EMPTY_PAYLOAD
            self.payload = payload
            self.response.set_result((message, payload))

    def release(self) -> None:
        """Drop what points back at the exchange (the parser, the payload, the future
        that may hold an exception whose traceback holds the exchange) and ignore any
        later event: the attempt's objects are then freed by reference counting at once,
        not left to the cyclic collector, whose pauses would delay launches."""
        self.broken = self.lost = True
        self._parser = None
        self.payload = None
        del self.response

    def _fail(self, exc: BaseException) -> None:
        if not self.response.done():
            self.response.set_exception(exc)
        elif self.payload is not None and not self.payload.is_eof():
            self.payload.set_exception(
                aiohttp.ClientPayloadError(f"Response payload is not completed: {exc!r}"), exc
            )

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.lost:
            return
        self.lost = True
        super().connection_lost(exc)
        if self._parser is not None and not self.broken:
            try:
                # ends a body delimited by the close; raises if one was cut short
                self._parser.feed_eof()
            except Exception as underlying:
                text = f"Response payload is not completed: {underlying!r}"
                if exc is not None:
                    text = f"{text}. {exc!r}"
                if self.payload is not None:
                    self.payload.set_exception(aiohttp.ClientPayloadError(text), underlying)
        if not self.response.done():
            if exc is None:
                self.response.set_exception(aiohttp.ServerDisconnectedError())
            elif isinstance(exc, OSError):
                self.response.set_exception(aiohttp.ClientOSError(*exc.args))
            else:
                self.response.set_exception(exc)


async def _drain(stream: StreamReader) -> int:
    """Read and discard up to MAX_BODY bytes of a response body; return how many."""
    read = 0
    while read < MAX_BODY:
        chunk = await stream.readany()
        if not chunk:
            break
        read += len(chunk)
    return read


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

    config_model = HttpProbeConfig

    def __init__(self, config: HttpProbeConfig, clock: Clock, lean: bool | None = None) -> None:
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
            if not is_token(key):
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
        # the lean path unless connections are reused, it is forced off (tests run the
        # outcome table on both paths), or aiohttp is one it was not tested with
        self._lean = not config.reuse_connections and compat.LEAN if lean is None else lean
        if self._lean and not compat.LEAN:
            raise ProbeConfigError(f"the lean HTTP path is not available: {compat.REASON}")
        if not self._lean and not config.reuse_connections:
            compat.lean_unavailable()
        self._tls: ssl.SSLContext | None = None
        self._lean_url: URL | None = None
        if self._lean:
            self._prepare_lean()

    def _prepare_lean(self) -> None:
        """What the lean path needs, computed once per URL: TLS context, address, request
        bytes. Called again only if ``_url`` is replaced (tests point a probe elsewhere)."""
        url = self._lean_url = self._url
        https = url.scheme == "https"
        if https and self._tls is None:
            self._tls = _lean_ssl(self._config.verify_tls, self._ssl)
        host = url.raw_host or ""
        port = url.port or (443 if https else 80)
        self._host, self._port = host, port
        self._server_hostname = host.rstrip(".") if https else None
        self._lean_tls = self._tls if https else None
        self._key = compat.connection_key(host, port, https)
        self._head_only = self._method == "HEAD"
        # an IP literal needs no lookup: its address info, once (no "dns" phase, as aiohttp)
        self._static_addrs: list[Any] | None = None
        try:
            self._static_addrs = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        except (OSError, UnicodeError):
            pass  # a name: resolved per attempt, cached DNS_TTL seconds
        self._dns: tuple[float, list[Any]] | None = None
        self._dns_turn = 0
        # credentials in the URL and an Authorization header: aiohttp refuses the request
        # with this ValueError (a probe_error per attempt); so does the lean path
        self._request_error: str | None = None
        self._prefix, self._suffix = self._request_bytes()

    def _request_bytes(self) -> tuple[bytes, bytes]:
        """The request around the attempt id: the bytes aiohttp sends for this config
        (same headers and defaults), with ``Connection: close``."""
        url, method = self._url, self._method
        lines = [f"{method} {url.raw_path_qs} HTTP/1.1"]
        given = {k.lower() for k in self._headers}
        host = self._headers.get(next((k for k in self._headers if k.lower() == "host"), ""))
        lines.append(f"Host: {host or url.host_port_subcomponent}")
        lines += [f"{k}: {v}" for k, v in self._headers.items() if k.lower() != "host"]
        given.add(ATTEMPT_HEADER.lower())
        prefix = "\r\n".join(lines) + f"\r\n{ATTEMPT_HEADER}: "
        tail: list[str] = []
        for name, value in (
            *ClientRequest.DEFAULT_HEADERS.items(),
            ("User-Agent", SERVER_SOFTWARE),
        ):
            if name.lower() not in given:
                tail.append(f"{name}: {value}")
        if url.user is not None:
            if "authorization" in given:
                self._request_error = (
                    "Cannot combine AUTHORIZATION header with AUTH argument or "
                    "credentials encoded in URL"
                )
            else:
                auth = aiohttp.BasicAuth.from_url(url)
                if auth is not None:
                    tail.append(f"Authorization: {auth.encode()}")
        body = self._body
        if "content-length" not in given:
            if body is not None:
                tail.append(f"Content-Length: {len(body)}")
            elif method not in ClientRequest.GET_METHODS:
                tail.append("Content-Length: 0")
        if "content-type" not in given and (
            body is not None or method in ClientRequest.POST_METHODS
        ):
            tail.append("Content-Type: application/octet-stream")
        if "connection" not in given:
            tail.append("Connection: close")
        suffix = "\r\n" + "".join(f"{line}\r\n" for line in tail) + "\r\n"
        return prefix.encode(), suffix.encode() + (body or b"")

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
        # breaks before the reply. A customer's call that broke would have failed: one
        # attempt must be one request.
        compat.disable_retry(self._session)
        return self._session

    async def run(self, ctx: ProbeContext) -> Result:
        if self._lean:
            return await self._run_lean(ctx)
        return await self._run_session(ctx)

    async def _run_lean(self, ctx: ProbeContext) -> Result:
        """One request on a fresh connection of our own (see the module docstring)."""
        now = self._clock.monotonic
        loop = asyncio.get_running_loop()
        detail: dict[str, Any] = {}
        phases: dict[str, float] = {}
        closing: socket.socket | asyncio.BaseTransport | None = None
        if self._lean_url is not self._url:
            self._prepare_lean()
        request = self._prefix + ctx.attempt_id.encode() + self._suffix
        exchange = _Exchange(loop, self._head_only, now)
        try:
            async with asyncio.timeout(ctx.timeout):
                if self._request_error is not None:
                    raise ValueError(self._request_error)
                addrs = self._static_addrs or await self._resolve(loop, phases)
                start = now()
                sock = await self._connect_tcp(loop, addrs)
                closing = sock
                if self._lean_tls is None:
                    # plain HTTP on the socket itself: no transport, fewer loop turns
                    phases["connect"] = round((now() - start) * 1000, 3)
                    await self._send_plain(loop, sock, request, exchange)
                    sent = now()
                    while not exchange.response.done():
                        await self._pump(loop, sock, exchange)
                else:
                    # from here the transport owns the socket (and closes it on failure)
                    closing = None
                    closing = await self._start_tls(loop, sock, exchange)
                    phases["connect"] = round((now() - start) * 1000, 3)
                    cast(asyncio.Transport, closing).write(request)
                    sent = now()
                message, payload = await self._response(exchange)
                status = message.code
                detail["status"] = status
                phases["processing"] = round((exchange.headers_at - sent) * 1000, 3)
                if self._lean_tls is None:
                    read = await self._read_plain(loop, sock, exchange, payload)
                else:
                    read = await _drain(payload)
                phases["transfer"] = round((now() - exchange.headers_at) * 1000, 3)
                detail["body_bytes"] = read
            outcome = self._reply_outcome(status, message.reason, detail)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a probe never raises for what the target does
            outcome = self._fault(exc, detail)
        finally:
            if isinstance(closing, asyncio.BaseTransport):
                # TLS: no close_notify round trip (the outcome is decided), as aiohttp's
                # connector closes with its default ssl_shutdown_timeout of 0
                cast(asyncio.Transport, closing).abort()
            elif closing is not None:
                closing.close()
            exchange.release()
        if phases:
            detail["phases"] = phases
        return Result(outcome, detail)

    @staticmethod
    async def _send_plain(
        loop: asyncio.AbstractEventLoop, sock: socket.socket, request: bytes, exchange: _Exchange
    ) -> None:
        try:
            await loop.sock_sendall(sock, request)
        except OSError as exc:
            forget_frames(exc, finished=True)  # loop.sock_* and its callback, done
            exchange.connection_lost(exc)  # the reply may still be readable: carry on

    @staticmethod
    async def _pump(
        loop: asyncio.AbstractEventLoop, sock: socket.socket, exchange: _Exchange
    ) -> None:
        """One read from the socket into the exchange, as a transport would deliver it."""
        if exchange.lost:
            return
        try:
            data = await loop.sock_recv(sock, READ_BUFSIZE)
        except OSError as exc:
            forget_frames(exc, finished=True)  # loop.sock_* and its callback, done
            exchange.connection_lost(exc)
            return
        if data:
            exchange.data_received(data)
        else:
            exchange.connection_lost(None)

    async def _read_plain(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        exchange: _Exchange,
        payload: StreamReader,
    ) -> int:
        """Body bytes read (up to MAX_BODY); the payload is fed by `_pump` and drained
        at once, so its buffer never reaches the flow-control mark."""
        read = 0
        while True:
            read += len(payload.read_nowait(-1))  # raises the payload's error, if any
            if read >= MAX_BODY or payload.is_eof() or exchange.lost or exchange.broken:
                return read
            await self._pump(loop, sock, exchange)

    async def _response(self, exchange: _Exchange) -> tuple[Any, StreamReader]:
        """The response's (message, payload), or the aiohttp exception for its failure."""
        try:
            return await exchange.response
        except compat.HttpProcessingError as exc:  # not HTTP: as aiohttp reports it
            info = aiohttp.RequestInfo(
                self._url, self._method, CIMultiDictProxy(CIMultiDict()), self._url
            )
            raise aiohttp.ClientResponseError(
                info, (), status=exc.code, message=exc.message, headers=exc.headers
            ) from exc

    async def _resolve(
        self, loop: asyncio.AbstractEventLoop, phases: dict[str, float]
    ) -> list[Any]:
        """The host's addresses: cached DNS_TTL s and taken in turn, as aiohttp does."""
        cached = self._dns
        started = self._clock.monotonic()
        if cached is not None and cached[0] > started:
            addrs = cached[1]
            self._dns_turn = turn = (self._dns_turn + 1) % len(addrs)
            return addrs[turn:] + addrs[:turn]
        try:
            addrs = await loop.getaddrinfo(
                self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
            )
        except OSError as exc:
            raise aiohttp.ClientConnectorDNSError(self._key, exc) from exc
        ended = self._clock.monotonic()
        phases["dns"] = round((ended - started) * 1000, 3)
        if not addrs:
            raise aiohttp.ClientConnectorDNSError(self._key, OSError("DNS lookup failed"))
        self._dns = (ended + DNS_TTL, addrs)
        return addrs

    async def _connect_tcp(
        self, loop: asyncio.AbstractEventLoop, addrs: list[Any]
    ) -> socket.socket:
        """A connected TCP socket: every address in turn, RFC 8305, as aiohttp does."""
        try:
            return await aiohappyeyeballs.start_connection(
                addrs, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, loop=loop
            )
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            # every connection attempt of the race has ended by now
            forget_frames(exc, finished=True)
            raise aiohttp.ClientConnectorError(self._key, exc) from exc

    async def _start_tls(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, exchange: _Exchange
    ) -> asyncio.BaseTransport:
        """The TLS handshake on `sock`; the transport then feeds `exchange`."""
        try:
            transport, _ = await loop.create_connection(
                lambda: exchange,
                sock=sock,
                ssl=self._lean_tls,
                server_hostname=self._server_hostname,
            )
        except ssl.CertificateError as exc:
            raise aiohttp.ClientConnectorCertificateError(self._key, exc) from exc
        except ssl.SSLError as exc:
            raise aiohttp.ClientConnectorSSLError(self._key, exc) from exc
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            # the handshake (create_connection and its callbacks) has ended
            forget_frames(exc, finished=True)
            raise aiohttp.ClientConnectorError(self._key, exc) from exc
        return transport

    def _reply_outcome(self, status: int, reason: str | None, detail: dict[str, Any]) -> Outcome:
        outcome = classify.http_status(status, self._expect, self._overrides)
        if status in classify.RATE_LIMITED_STATUSES:
            detail["rate_limited"] = True
        if outcome is not Outcome.OK:
            detail["message"] = classify.short(reason or "")
        return outcome

    async def _run_session(self, ctx: ProbeContext) -> Result:
        """One request through the shared `ClientSession` (``reuse_connections``)."""
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
                    read = await _drain(resp.content)
                    marks.end = self._clock.monotonic()
                    detail["body_bytes"] = read
            outcome = self._reply_outcome(status, resp.reason, detail)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a probe never raises for what the target does
            outcome = self._fault(exc, detail)
        phases = marks.phases()
        if phases:
            detail["phases"] = phases
        return Result(outcome, detail)

    def _fault(self, exc: Exception, detail: dict[str, Any]) -> Outcome:
        """Classify an attempt that ended in an exception, recording what happened."""
        forget_frames(exc)
        detail["error"] = type(exc).__name__
        if isinstance(exc, TimeoutError):
            detail["message"] = "no complete response by the deadline"
            return Outcome.TIMEOUT
        detail["message"] = classify.short(self._describe(exc))
        return exception_outcome(exc)

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
