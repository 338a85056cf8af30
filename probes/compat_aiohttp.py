"""The non-public parts of aiohttp that the HTTP probe uses, in the one place that
imports them, guarded.

aiohttp has no public API for what the lean fresh-connection path needs (probes/http.py):
its response parser, the protocol base class the parser feeds, the exception of a reply
that is not HTTP, the empty payload, and the switch of its silent retry of idempotent
requests. They are used only while aiohttp is inside `TESTED` (the lowest version
pyproject.toml admits, which CI installs in a second virtualenv, up to the next major)
and every name imports; otherwise `LEAN` is False, `REASON` says why (logged once by the
probe), and the probe sends every attempt through aiohttp's public `ClientSession` on a
fresh connection instead: the same outcomes (tests/probes/test_probe_http.py runs its
outcome table on both paths) at about twice the CPU per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

import aiohttp

log = logging.getLogger(__name__)

#: [lowest, first untested): the aiohttp versions this module was tested with
TESTED: tuple[tuple[int, int, int], tuple[int, int, int]] = ((3, 10, 10), (4, 0, 0))


def _version(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


VERSION = _version(aiohttp.__version__)

if TYPE_CHECKING:
    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.http_exceptions import HttpProcessingError
    from aiohttp.http_parser import HttpResponseParser
    from aiohttp.streams import EMPTY_PAYLOAD

    LEAN: bool
    REASON: str
else:
    LEAN, REASON = True, ""
    try:
        if not TESTED[0] <= VERSION < TESTED[1]:
            raise ImportError(
                f"aiohttp {aiohttp.__version__} is outside the tested "
                f"{'.'.join(map(str, TESTED[0]))} to <{'.'.join(map(str, TESTED[1]))}"
            )
        from aiohttp.base_protocol import BaseProtocol
        from aiohttp.http_exceptions import HttpProcessingError
        from aiohttp.http_parser import HttpResponseParser
        from aiohttp.streams import EMPTY_PAYLOAD
    except ImportError as exc:
        LEAN, REASON = False, str(exc)
        # stand-ins so that probes/http.py still defines its classes; never used
        BaseProtocol = asyncio.Protocol
        HttpProcessingError = HttpResponseParser = EMPTY_PAYLOAD = None


def disable_retry(session: aiohttp.ClientSession) -> bool:
    """Turn off aiohttp's silent re-send of an idempotent request on a new connection when
    the first broke before the reply (RFC 9112 §9.3.1): one attempt must be one request.
    aiohttp has no public switch; its request loop reads this attribute (3.10 and later).
    False (logged once) where the attribute is absent."""
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
        return True
    _warn_once("aiohttp has no _retry_connection: a broken idempotent request may be re-sent")
    return False


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


def lean_unavailable() -> None:
    """Log, once, that the lean path is off and why."""
    if not LEAN:
        _warn_once(f"HTTP probes use aiohttp's ClientSession for fresh connections: {REASON}")


class _Key:
    """A connection key with what aiohttp's connector exceptions read from one (host,
    port, ssl for the message; is_ssl), for errors the lean path raises itself."""

    __slots__ = ("host", "is_ssl", "port", "ssl")

    def __init__(self, host: str, port: int, is_ssl: bool) -> None:
        self.host, self.port, self.is_ssl = host, port, is_ssl
        self.ssl = True  # aiohttp's own key says True for "the default": "ssl:default"


def connection_key(host: str, port: int, is_ssl: bool) -> Any:
    """aiohttp's own ConnectionKey where it builds as this module knows it, else `_Key`."""
    if LEAN:
        try:
            from aiohttp.client_reqrep import ConnectionKey

            return ConnectionKey(host, port, is_ssl, True, None, None, None)
        except (ImportError, TypeError):
            pass
    return _Key(host, port, is_ssl)
