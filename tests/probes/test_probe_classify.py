"""The classification tables and override resolution, as pure functions."""

from __future__ import annotations

import errno
import socket
import ssl
from pathlib import Path

import pytest

from probes import classify
from probes.base import Outcome

OK, TO, SE, CE, PE = (
    Outcome.OK,
    Outcome.TIMEOUT,
    Outcome.SERVER_ERROR,
    Outcome.CLIENT_ERROR,
    Outcome.PROBE_ERROR,
)
EXPECT_2XX = frozenset(range(200, 300))


@pytest.mark.parametrize(
    ("status", "expect", "outcome"),
    [
        (200, EXPECT_2XX, OK),
        (204, EXPECT_2XX, OK),
        (500, EXPECT_2XX, SE),
        (503, EXPECT_2XX, SE),
        (400, EXPECT_2XX, CE),
        (401, EXPECT_2XX, CE),
        (420, EXPECT_2XX, CE),
        (429, EXPECT_2XX, CE),
        (301, EXPECT_2XX, CE),
        (204, frozenset({200}), CE),
        (404, frozenset({404}), OK),
        (600, EXPECT_2XX, SE),
    ],
    ids=[
        "200-ok",
        "204-ok",
        "500-server_error",
        "503-server_error",
        "400-client_error",
        "401-client_error",
        "420-quota-client_error",
        "429-rate_limited-client_error",
        "3xx-not-followed-client_error",
        "2xx-not-expected-client_error",
        "expected-404-ok",
        "status-outside-http-server_error",
    ],
)
def test_http_default_table(status: int, expect: frozenset[int], outcome: Outcome) -> None:
    assert classify.http_status(status, expect, {}) is outcome


@pytest.mark.parametrize(
    ("code", "text", "outcome"),
    [
        (421, "Service not available", SE),
        (451, "Local error", SE),
        (452, "Insufficient storage", SE),
        (454, "TLS not available", SE),
        (441, "other transient", SE),
        (450, "Mailbox unavailable", CE),
        (500, "Syntax error", CE),
        (504, "Not implemented", CE),
        (530, "Authentication required", CE),
        (535, "Bad credentials", CE),
        (550, "Policy", CE),
        (553, "Mailbox name", CE),
        (554, "Transaction failed", CE),
        (554, "5.3.0 Mail system not accepting", SE),
        (421, "4.3.3 [internal] try later", SE),
        (450, "4.4.1 no answer", SE),
        (421, "4.7.0 rate limited", CE),
        (451, "4.7.1 policy", CE),
        (550, "5.7.1 Unconfigured Sending Domain", CE),
        (535, "5.7.8 Bad credentials", CE),
        (452, "4.2.2 mailbox full", SE),
        (450, "4.2.1 greylisted", CE),
        (550, "4.3.0 class mismatch ignored", CE),
        (250, "2.0.0 unexpected where failure", SE),
        (-1, "Malformed SMTP response line", SE),
    ],
    ids=[
        "421-server_error",
        "451-server_error",
        "452-server_error",
        "454-server_error",
        "other-4yz-server_error",
        "450-client_error",
        "500-syntax-client_error",
        "504-client_error",
        "530-auth-client_error",
        "535-auth-client_error",
        "550-policy-client_error",
        "553-client_error",
        "554-plain-client_error",
        "554-5.3.x-server_error",
        "4.3.x-server_error",
        "4.4.x-server_error",
        "4.7.x-on-421-client_error",
        "4.7.x-on-451-client_error",
        "5.7.1-client_error",
        "5.7.8-client_error",
        "other-4.x.x-code-decides-452",
        "other-4.x.x-code-decides-450",
        "enhanced-class-mismatch-code-decides",
        "unexpected-2yz-server_error",
        "garbage-reply-server_error",
    ],
)
def test_smtp_default_table(code: int, text: str, outcome: Outcome) -> None:
    assert classify.smtp_reply(code, classify.parse_enhanced(text), {}, expected=False) is outcome


def test_smtp_expected_reply_is_ok() -> None:
    assert classify.smtp_reply(250, "2.0.0", {}, expected=True) is OK


@pytest.mark.parametrize(
    ("text", "enhanced"),
    [
        ("4.3.3 [internal] try later", "4.3.3"),
        ("5.7.1 Unconfigured Sending Domain", "5.7.1"),
        ("  2.0.0 OK", "2.0.0"),
        ("5.010.1 leading zeros", "5.10.1"),
        ("Service not available", None),
        ("1.2.3 not a class", None),
        ("5.7.1.2 too many parts", None),
        ("see 5.7.1 in the middle", None),
    ],
    ids=[
        "internal",
        "policy",
        "leading-space",
        "normalised",
        "none",
        "bad-class",
        "four-parts",
        "not-at-start",
    ],
)
def test_parse_enhanced(text: str, enhanced: str | None) -> None:
    assert classify.parse_enhanced(text) == enhanced


@pytest.mark.parametrize(
    ("overrides", "code", "enhanced", "outcome"),
    [
        ({"5xx": OK, "503": TO}, 503, None, TO),
        ({"5xx": CE}, 502, None, CE),
        ({"421": CE, "4xx": OK}, 421, "4.3.3", CE),
        ({"421": CE, "4.3": TO}, 421, "4.3.3", TO),
        ({"4.3": TO, "4.3.3": OK}, 421, "4.3.3", OK),
        ({"4.7.1": SE}, 451, "4.7.2", None),
        ({"4.7": SE}, 451, "4.7.2", SE),
        ({"503": TO}, 502, None, None),
        ({}, 500, "5.3.0", None),
    ],
    ids=[
        "exact-code-beats-class",
        "class",
        "code-beats-class",
        "enhanced-prefix-beats-code",
        "exact-enhanced-beats-prefix",
        "other-enhanced-no-match",
        "prefix-matches",
        "no-match",
        "empty",
    ],
)
def test_override_most_specific_wins(
    overrides: dict[str, Outcome], code: int, enhanced: str | None, outcome: Outcome | None
) -> None:
    assert classify.resolve_override(overrides, code, enhanced) is outcome


def test_override_applies_before_expect_status() -> None:
    assert classify.http_status(200, EXPECT_2XX, {"200": SE}) is SE
    assert classify.http_status(503, EXPECT_2XX, {"503": CE}) is CE
    assert classify.smtp_reply(250, None, {"2xx": SE}, expected=True) is SE
    assert classify.smtp_reply(421, "4.3.3", {"4.3": CE}, expected=False) is CE


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), PE),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), SE),
        (ConnectionResetError(errno.ECONNRESET, "reset"), SE),
        (OSError(errno.EHOSTUNREACH, "no route to host"), SE),
        (OSError(errno.ENETUNREACH, "network unreachable"), PE),
        (OSError(errno.EMFILE, "too many open files"), PE),
        (OSError(errno.EADDRNOTAVAIL, "cannot assign address"), PE),
        (ssl.SSLError(1, "handshake failure"), SE),
        (TimeoutError(), TO),
    ],
    ids=[
        "dns-probe_error",
        "refused-server_error",
        "reset-server_error",
        "host-unreachable-server_error",
        "enetunreach-probe_error",
        "emfile-probe_error",
        "eaddrnotavail-probe_error",
        "tls-handshake-server_error",
        "timeout",
    ],
)
def test_os_error_table(exc: BaseException, outcome: Outcome) -> None:
    assert classify.os_error(exc) is outcome


def test_short_cuts_and_flattens() -> None:
    assert classify.short("a\n  b") == "a b"
    cut = classify.short("x" * 500, limit=50)
    assert len(cut) == 50 and cut.endswith("…")


def test_the_classification_table_is_the_readmes() -> None:
    """The table the monthly report quotes (CLASSIFICATION_TABLE) is the README's, row for
    row, so that a claim states the rules the documentation promises."""
    from probes.classify import CLASSIFICATION_TABLE

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    lines = readme.split("| observed | outcome |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in lines.splitlines():
        observed, outcome = (cell.strip() for cell in line.strip("|").split(" | "))
        rows.append((observed, outcome.replace("`", "", 2) if outcome.startswith("`") else outcome))
    assert rows == [(observed, outcome) for observed, outcome in CLASSIFICATION_TABLE], (
        "README's classification table and probes/classify.py CLASSIFICATION_TABLE differ"
    )
