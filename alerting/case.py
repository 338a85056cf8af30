"""The Sev-1 case sheet: what a person reads out on the vendor's Sev-1 line when a Critical
Issue opens, and the vendor's callback against its promise.

The support terms say a Critical Issue is reported on the Sev-1 line, where the vendor's
representative takes "company name, contact name, contact phone, contact email and a
description of the Critical Issue", then calls back within 15 minutes. The sheet holds
those fields (`[sev1]` in the config), a description written from the stored evidence of
the outage's first seconds (which channels, since when, what failed: HTTP statuses, SMTP
replies and the stage they came at, timeouts; sample attempt ids, the ids the target saw
in ``X-Availmon-Attempt``; which vantage points saw it), and the callback deadline.

When the leader's store writer is about to write the effects that open a Critical Issue,
the daemon composes the sheet (`compose`, in the writer thread: the seconds' evidence is
already stored, the writer keeps that order) and adds it to the timeline as a
``case_sheet`` event and to the trigger pages (``payload["case"]``, which every notifier
shows with the text). `case_view` serves it (the stored one, or one composed now for an
incident opened before the store held one); ``vendor_callback`` events record when the
vendor called back (`alerting.incidents.Incidents.callback`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from alerting.escalation import iso
from alerting.model import Severity
from monitor.config import Settings
from monitor.store.base import Incident, IncidentEvent, Store

CASE_EVENT = "case_sheet"
CALLBACK_EVENT = "vendor_callback"
#: seconds of evidence read, from the first unavailable second
EVIDENCE_WINDOW = 120
#: attempt ids quoted (the first and last failed attempts read)
SAMPLES = 4
#: labels of the fields the vendor's representative asks for, in their order
FIELDS = (
    ("company", "Company"),
    ("account_id", "Account"),
    ("contact_name", "Contact name"),
    ("contact_phone", "Contact phone"),
    ("contact_email", "Contact email"),
)
_CHANNEL_WORDS = {"api": "API call", "smtp": "SMTP injection"}
_QUALIFYING = ("timeout", "server_error")


class NotCritical(ValueError):
    """A case sheet is for Critical Issues only; `str()` is one line."""


def _what(row: Mapping[str, Any]) -> str:
    """One failed attempt, as a person says it: "HTTP 503", "SMTP 421 4.3.2 at rcpt",
    "timeout at data", "timeout (no complete response by the deadline)"."""
    d = row.get("detail") or {}
    stage = d.get("stage")
    at = f" at {stage}" if stage else ""
    if row.get("outcome") == "timeout":
        if stage:
            return f"timeout{at}"
        message = d.get("message")
        return f"timeout ({message})" if message else "timeout"
    if d.get("status") is not None:
        return f"HTTP {d['status']}"
    if d.get("code") is not None:
        enhanced = f" {d['enhanced']}" if d.get("enhanced") else ""
        return f"SMTP {d['code']}{enhanced}{at}"
    error = d.get("error") or d.get("message") or row.get("outcome", "failure")
    return f"{error}{at}"


def _since(incident: Incident) -> int:
    start = incident.first_unavailable
    return int(incident.opened_at) - 60 if start is None else start


def read_evidence(store: Store, incident: Incident) -> list[dict[str, Any]]:
    """The stored attempts a sheet is written from: the outage's first seconds (a worker or
    the writer thread; raises what the store raises)."""
    if incident.severity != Severity.CRITICAL:
        raise NotCritical(
            f"incident {incident.id} is Non-Critical: a Sev-1 case is for Critical Issues"
        )
    start = _since(incident)
    end = min((incident.last_unavailable or start) + 1, start + EVIDENCE_WINDOW)
    return store.evidence(incident.service, start, max(end, start + 1), limit=5000)


def compose(
    settings: Settings, incident: Incident, rows: Sequence[Mapping[str, Any]], now: float
) -> dict[str, Any]:
    """The sheet of a Critical Issue, from the config and its evidence (`read_evidence`)."""
    sev1 = settings.sev1
    start = _since(incident)
    failed = [r for r in rows if r.get("outcome") in _QUALIFYING]
    by_channel: dict[str, Counter[str]] = {}
    for r in failed:
        by_channel.setdefault(str(r.get("channel")), Counter())[_what(r)] += 1
    channels = list(incident.data.get("channels") or sorted(by_channel))
    vantages = sorted({str(r.get("vantage")) for r in failed if r.get("vantage")})
    ids = [str(r["attempt_id"]) for r in failed if r.get("attempt_id")]
    half = SAMPLES // 2
    samples = ids[:half] + [i for i in ids[-half:] if i not in ids[:half]]
    due = incident.opened_at + sev1.callback_minutes * 60
    svc = next((s for s in settings.services if s.name == incident.service), None)
    case: dict[str, Any] = {
        "incident_id": incident.id,
        "dedup_key": incident.dedup_key,
        "service": incident.service,
        "service_description": svc.description if svc is not None else "",
        **{key: getattr(sev1, key) for key, _ in FIELDS},
        "vendor_phone": sev1.vendor_phone,
        "vendor_email": sev1.vendor_email,
        "opened_at": incident.opened_at,
        "since": start,
        "callback_minutes": sev1.callback_minutes,
        "callback_due_at": due,
        "channels": channels,
        "failures": {
            ch: [{"what": what, "attempts": n} for what, n in c.most_common()]
            for ch, c in sorted(by_channel.items())
        },
        "sample_attempt_ids": samples,
        "vantages": vantages,
        "composed_at": now,
    }
    case["description"] = _describe(case, incident)
    return case


def _describe(case: Mapping[str, Any], incident: Incident) -> str:
    service = case["service"]
    what = case["service_description"] or "the email platform"
    channels = [c for c in case["channels"] if c in _CHANNEL_WORDS] or list(case["failures"])
    words = " and ".join(f"every {_CHANNEL_WORDS.get(c, c)}" for c in channels) or "every call"
    parts = [
        f"Since {iso(case['since'])}, {words} of {service} ({what}) failed with a server-side "
        f"timeout or an internal service error (availmon Critical Issue #{incident.id}, "
        f"{incident.dedup_key}, opened {iso(case['opened_at'])}, "
        f"{incident.unavailable_seconds} unavailable seconds so far)."
    ]
    for channel, rows in case["failures"].items():
        listed = ", ".join(f"{r['what']} ({r['attempts']} attempts)" for r in rows[:4])
        parts.append(f"{_CHANNEL_WORDS.get(channel, channel)}: {listed}.")
    if not case["failures"]:
        parts.append("No stored evidence of the failed attempts was found.")
    if case["sample_attempt_ids"]:
        parts.append(
            "Sample attempt ids (header X-Availmon-Attempt): "
            + ", ".join(case["sample_attempt_ids"])
            + "."
        )
    if case["vantages"]:
        parts.append("Seen from: " + ", ".join(case["vantages"]) + ".")
    return " ".join(parts)


def render_text(case: Mapping[str, Any]) -> str:
    """The sheet as plain text, to read out on the phone (and in a page or an email)."""
    line = case.get("vendor_phone") or "the vendor's Sev-1 line"
    lines = [
        f"SEV-1 CASE: call {line} and report a Critical Issue",
        *(
            f"{label + ':':<15}{case.get(key) or f'(not configured: [sev1] {key})'}"
            for key, label in FIELDS
        ),
        f"{'Description:':<15}{case['description']}",
        f"{'Callback due:':<15}{iso(case['callback_due_at'])} ({case['callback_minutes']:g} "
        f"min after the Critical Issue opened at {iso(case['opened_at'])})",
    ]
    if case.get("vendor_email"):
        lines.append(f"{'Vendor email:':<15}{case['vendor_email']}")
    callback = case.get("callback")
    if callback:
        verdict = "within" if callback["within"] else "LATER than"
        lines.append(
            f"{'Called back:':<15}{iso(callback['at'])} by {callback['by']}, "
            f"{callback['minutes']:.1f} min after opening ({verdict} the promise)"
        )
    return "\n".join(lines)


def callback_of(incident: Incident, events: Sequence[IncidentEvent]) -> dict[str, Any] | None:
    """The vendor's first recorded callback, against the promise (None: not recorded)."""
    for e in events:
        if e.kind == CALLBACK_EVENT:
            at = float(e.data["at"])
            minutes = (at - incident.opened_at) / 60
            return {
                "at": at,
                "by": e.data.get("by"),
                "minutes": round(minutes, 2),
                "within": bool(e.data.get("within", minutes <= 15)),
                "note": e.data.get("note", ""),
            }
    return None


def case_view(settings: Settings, store: Store, incident_id: int, now: float) -> dict[str, Any]:
    """The case of an incident for the API and CLI: the sheet written when it opened (or
    composed now, `stored` false), with the vendor's callback if one is recorded."""
    incident = store.get_incident(incident_id)
    events = store.events(incident_id)
    stored = [e for e in events if e.kind == CASE_EVENT]
    if stored:
        case = dict(stored[-1].data["case"])
        case["stored"] = True
    else:
        case = compose(settings, incident, read_evidence(store, incident), now)
        case["stored"] = False
    case["state"] = str(incident.state)
    case["callback"] = callback_of(incident, events)
    return case
