"""How an observed reply or error becomes an `Outcome`: the default tables and overrides.

Pure functions, shared by the HTTP and SMTP probes; the README copies this table.

Default classification
======================

========================================================  ===============
observed                                                  outcome
========================================================  ===============
HTTP status in ``expect_status`` (default 200-299)        ok
HTTP 5xx                                                  server_error
HTTP 4xx, incl. 420 (quota) and 429 (rate limit)          client_error
  (420 and 429 also set ``detail["rate_limited"]``)
HTTP 1xx/2xx/3xx not in ``expect_status`` (redirects      client_error
  are not followed: the probe measures one URL)
a reply that is not HTTP / not SMTP (garbage bytes)       server_error
no reply by the deadline (connect, TLS, headers, body,    timeout
  banner or any SMTP stage)
connection refused / reset / closed before a reply        server_error
TLS handshake failure (incl. certificate rejected)        server_error
DNS failure                                               probe_error
local OS error (EMFILE, ENFILE, ENETUNREACH, ENOBUFS,     probe_error
  EADDRNOTAVAIL, EACCES, EPERM, ENOMEM)
bad probe config (invalid URL, header, address)           probe_error
SMTP: every stage to the configured depth succeeds        ok
SMTP with an enhanced code (RFC 3463) 4.3.x, 4.4.x,       server_error
  5.3.x
SMTP with an enhanced code 4.7.x, or 5.x.x otherwise      client_error
SMTP 421, 451, 452, 454, other 4yz except 450             server_error
SMTP 450, 5yz otherwise (500-504, 530, 535, 550, 553,     client_error
  554 without 5.3.x)
SMTP server does not offer STARTTLS / AUTH the probe      client_error
  is configured to use (``detail["reason"]``)
SMTP reply code that no stage expects (e.g. 250 to DATA)  server_error
========================================================  ===============

The enhanced status code decides when the reply carries one of the classes listed
(``4.3``, ``4.4``, ``4.7``, ``5.x``) and its class digit agrees with the reply code; other
``4.x.x`` codes (``4.2.2`` mailbox full, ``4.5.3`` too many recipients) leave the decision
to the basic reply code. ``EHOSTUNREACH`` is a server_error: it is what a customer sees
when the platform's hosts drop off the network; the monitor's own network failing is
what ``control`` probes are for.

Overrides
=========

``classify`` in a probe's config maps a key to an outcome. Keys: an HTTP status or SMTP
reply code (``"503"``, ``"421"``), a class (``"5xx"``), an enhanced code (``"4.7.1"``)
or an enhanced prefix (``"5.3"``). The most specific key that matches wins:
exact enhanced code > shorter enhanced prefix > exact code > ``Nxx`` class. Overrides
are consulted before ``expect_status`` and the default table, for every reply that ended
an attempt (a successful one too).
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Mapping

from probes.base import Outcome

#: HTTP statuses that mean "slow down", not "broken"
RATE_LIMITED_STATUSES: frozenset[int] = frozenset({420, 429})

#: basic SMTP 4yz codes that are the platform's fault even without an enhanced code
SMTP_TRANSIENT_SERVER: frozenset[int] = frozenset({421, 451, 452, 454})

#: enhanced-code prefixes (class.subject) and what they mean when present
ENHANCED_CLASSES: dict[str, Outcome] = {
    "4.3": Outcome.SERVER_ERROR,  # mail system status (internal error, overload)
    "4.4": Outcome.SERVER_ERROR,  # network and routing (no answer, congestion)
    "4.7": Outcome.CLIENT_ERROR,  # security or policy (rate limits, auth policy)
    "5.3": Outcome.SERVER_ERROR,  # mail system status, permanent (system not accepting)
    "5": Outcome.CLIENT_ERROR,  # any other permanent enhanced code
}

#: the default classification as the README states it (observed, outcome), one row per
#: line of its table (tests/probes/test_classify.py keeps the two equal); the monthly
#: report quotes it in its Method section, beside each probe's `classify` overrides
CLASSIFICATION_TABLE: tuple[tuple[str, str], ...] = (
    ("HTTP status in `expect_status` (default 2xx)", "ok"),
    ("HTTP 5xx", "server_error"),
    (
        "HTTP 4xx, incl. 420 (quota) and 429 (rate limit)",
        "client_error (detail `rate_limited` for 420/429)",
    ),
    ("no response by the deadline (connect, TLS, headers or body)", "timeout"),
    (
        "connection refused / reset / closed before a reply, TLS handshake failure",
        "server_error",
    ),
    ("DNS failure, local OS error (EMFILE, ENETUNREACH), bad probe config", "probe_error"),
    ("SMTP: every stage to the configured `depth` succeeds (250 after DATA)", "ok"),
    ("SMTP: no banner / any stage past the deadline", "timeout"),
    (
        "SMTP 421, 451, 452, 454, other 4yz except 450 and 4.7.x; 554 5.3.x; drop without reply",
        "server_error",
    ),
    (
        "SMTP 5yz otherwise (500-504 syntax, 530/535 auth, 550/553 policy), 450, 4.7.x",
        "client_error",
    ),
)

#: errnos that mean the monitor's own host failed, not the target
LOCAL_ERRNOS: frozenset[int] = frozenset(
    {
        errno.EMFILE,
        errno.ENFILE,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENOBUFS,
        errno.ENOMEM,
        errno.EADDRNOTAVAIL,
        errno.EADDRINUSE,
        errno.EACCES,
        errno.EPERM,
        errno.EAFNOSUPPORT,
    }
)

_ENHANCED_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


def parse_enhanced(text: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of an SMTP reply text, if any.

    aiosmtplib strips the reply code, so the text starts with ``4.3.0 ...``; a multi-line
    reply repeats it on each line, and the first one counts.
    """
    m = _ENHANCED_RE.match(text.lstrip())
    if m is None:
        return None
    return f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}"


def resolve_override(
    overrides: Mapping[str, Outcome], code: int | None, enhanced: str | None = None
) -> Outcome | None:
    """The outcome the most specific matching `classify` key gives, or None.

    Order: exact enhanced code > shorter enhanced prefix > exact code > ``Nxx`` class.
    """
    if not overrides:
        return None
    if enhanced is not None:
        parts = enhanced.split(".")
        # longest first: "4.7.1" then "4.7"
        for n in range(len(parts), 1, -1):
            hit = overrides.get(".".join(parts[:n]))
            if hit is not None:
                return hit
    if code is not None and 100 <= code <= 599:
        hit = overrides.get(str(code))
        if hit is not None:
            return hit
        return overrides.get(f"{code // 100}xx")
    return None


def http_status(status: int, expect: frozenset[int], overrides: Mapping[str, Outcome]) -> Outcome:
    """Outcome of an HTTP response with `status`."""
    hit = resolve_override(overrides, status)
    if hit is not None:
        return hit
    if status in expect:
        return Outcome.OK
    if 500 <= status <= 599:
        return Outcome.SERVER_ERROR
    if 100 <= status <= 499:
        return Outcome.CLIENT_ERROR
    # a status line outside 1xx-5xx: the server answered, but not in HTTP
    return Outcome.SERVER_ERROR


def smtp_default(code: int, enhanced: str | None) -> Outcome:
    """Default outcome of an SMTP reply that ended an attempt (no overrides)."""
    klass = code // 100 if 100 <= code <= 599 else 0
    if enhanced is not None and klass in (4, 5) and enhanced[0] == str(klass):
        hit = ENHANCED_CLASSES.get(enhanced.rsplit(".", 1)[0])
        if hit is None and klass == 5:
            hit = ENHANCED_CLASSES["5"]
        if hit is not None:
            return hit
    if klass == 4:
        return Outcome.CLIENT_ERROR if code == 450 else Outcome.SERVER_ERROR
    if klass == 5:
        return Outcome.CLIENT_ERROR
    # 1yz/2yz/3yz where a failure ended the attempt, or a malformed reply (-1): the server
    # answered, but not as SMTP requires at that stage
    return Outcome.SERVER_ERROR


def smtp_reply(
    code: int, enhanced: str | None, overrides: Mapping[str, Outcome], *, expected: bool
) -> Outcome:
    """Outcome of the SMTP reply that ended an attempt.

    `expected` is True when the reply is the success the last stage waited for.
    """
    hit = resolve_override(overrides, code, enhanced)
    if hit is not None:
        return hit
    if expected:
        return Outcome.OK
    return smtp_default(code, enhanced)


def os_error(exc: BaseException) -> Outcome:
    """Outcome of an OS-level error while connecting to or talking with the target."""
    if isinstance(exc, socket.gaierror | UnicodeError):
        return Outcome.PROBE_ERROR  # DNS failure, or a name that cannot be resolved at all
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return Outcome.SERVER_ERROR  # TLS handshake failure
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT
    if isinstance(exc, OSError) and exc.errno in LOCAL_ERRNOS:
        return Outcome.PROBE_ERROR
    # refused, reset, aborted, broken pipe, host unreachable, EOF: the target's side
    return Outcome.SERVER_ERROR


def short(text: object, limit: int = 200) -> str:
    """A reply or error text cut to a length fit for `detail["message"]`."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"
