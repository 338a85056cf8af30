"""The report's Method section: how its figures were measured, so that a claim states it.

The SLA definition quoted, every probe as configured (what it reaches, how often, how
long it waits, its classification overrides; never a header, password or key, and a URL
without its user, password or query), the default classification table, the vantage
points and quorum, and what was excluded. It describes the configuration in force when
the report was generated (`generated_at`): availmon keeps no history of its config.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from monitor.config import ServiceConfig, Settings
from monitor.verdicts import CHANNELS
from probes.base import QUALIFYING, ProbeBase
from probes.classify import CLASSIFICATION_TABLE

#: the contract's words (README "What it measures", ARCHITECTURE.md "The contract")
SLA_DEFINITION = (
    "A second is Unavailable when the customer attempts API calls and all of them fail "
    "with a server-side timeout or an internal service error, and/or attempts SMTP "
    "injections and all of them fail the same way. Monthly availability is 100 % minus "
    "the percentage of the month's seconds that were Unavailable, excluding scheduled "
    "maintenance."
)
FORMULA = (
    "availability_percent = 100 - 100 * unavailable_seconds.service / "
    "(total_seconds - excluded_seconds); seconds not measured are not unavailable"
)
ATTEMPT_ID = (
    "probe:second:slot@vantage, sent in the X-Availmon-Attempt header (HTTP; SMTP message "
    "header and body) and in the SMTP Message-ID with ':' written '_' and '@' written '='"
)


def public_url(url: str) -> str:
    """`url` without user, password, query or fragment: what it reaches, never a key."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    dropped = "?…" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path or '/'}{dropped}"


def _statuses(codes: list[int]) -> str:
    """200-299 for a run of codes, as the config's default reads."""
    out: list[str] = []
    for c in sorted(set(codes)):
        if out and out[-1].split("-")[-1] == str(c - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{c}"
        else:
            out.append(str(c))
    return ", ".join(out)


def probe_method(p: ProbeBase) -> dict[str, Any]:
    """One probe as the Method lists it: no secret field is ever read."""
    row: dict[str, Any] = {
        "name": p.name,
        "type": p.type,
        "channel": p.channel,
        "enabled": p.enabled,
        "attempts_per_second": p.attempts_per_second,
        "timeout_seconds": p.timeout_seconds,
        "reuse_connections": p.reuse_connections,
    }
    url = getattr(p, "url", None)
    if url is not None:  # http
        row["target"] = public_url(str(url))
        row["method"] = getattr(p, "method", None)
        row["expect_status"] = _statuses(list(getattr(p, "expect_status", [])))
    host = getattr(p, "host", None)
    if host is not None:  # smtp
        port = getattr(p, "port", None)
        row["target"] = f"{host}:{port}"
        row["host"] = host
        row["port"] = port
        row["tls"] = getattr(p, "tls", None)
        row["depth"] = getattr(p, "depth", None)
    row["classify"] = {k: str(v) for k, v in sorted(p.classify.items())}
    return row


def method(
    settings: Settings,
    svc: ServiceConfig,
    vantages: list[str],
    *,
    excluded_seconds: int,
    maintenance_windows: int,
) -> dict[str, Any]:
    """The Method section of one service's report."""
    probes = [probe_method(p) for p in svc.probes]
    return {
        "sla": SLA_DEFINITION,
        "formula": FORMULA,
        "qualifying_outcomes": sorted(str(o) for o in QUALIFYING),
        "channels": [ch for ch in CHANNELS if ch in svc.channels],
        "combine": svc.combine,
        "quorum": "all" if svc.quorum is None else svc.quorum,
        "vantages": vantages,
        "attempt_id": ATTEMPT_ID,
        "probes": probes,
        "classification": [
            {"observed": observed, "outcome": outcome} for observed, outcome in CLASSIFICATION_TABLE
        ],
        "overrides": sum(len(p["classify"]) for p in probes),
        "excluded_seconds": excluded_seconds,
        "maintenance_windows": maintenance_windows,
        "blind_after_seconds": svc.non_critical.blind_after_seconds,
        "merge_gap_seconds": settings.report.merge_gap_seconds,
        "config": "as in force when the report was generated",
    }
