"""The simulator's fault vocabulary: what each fault does to an attempt on each channel, and
the outcome the SLA rules give the result (the simulator's own ground truth).

A fault is data: `parse_fault` validates a name and its parameters against `FAULTS` and
returns an `ActiveFault`, which decides per attempt (by arrival order) which `Action` the
API or SMTP side performs. Every `Action` carries its `expected` outcome, written next to the
reply it describes, so that the ground truth never re-derives it from the wire.
"""

from __future__ import annotations

import enum
import http
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from probes.base import Outcome

CHANNELS = ("api", "smtp")
CHANNEL_CHOICES = (*CHANNELS, "both")

#: SMTP points at which a fault can strike; `data` (after the message content arrived, before
#: the reply) is the default because only there is the attempt id known.
SMTP_STAGES = ("banner", "ehlo", "mail", "rcpt", "data")
DEFAULT_SMTP_STAGE = "data"
#: the API side has one point: the request
API_STAGE = "request"
#: where tls_fail strikes, whatever `stage` says
STARTTLS_STAGE = "starttls"


class Act(enum.StrEnum):
    """What the server does to one attempt."""

    PASS = "pass"  # answer normally
    REPLY = "reply"  # answer with a given status / reply line
    HANG = "hang"  # never answer; keep the connection open
    SLOW = "slow"  # wait `delay` seconds, then answer normally
    RESET = "reset"  # close abruptly with a TCP RST, no reply
    DROP = "drop"  # read the request / message, then close (FIN) without a reply
    TLS_FAIL = "tls_fail"  # SMTP: accept STARTTLS, then speak garbage


@dataclass(frozen=True, slots=True)
class Action:
    """One attempt's fate. `status` is the HTTP status or SMTP reply code of a REPLY, `text`
    the SMTP reply line (code included) or the HTTP error message."""

    act: Act
    expected: Outcome
    status: int = 0
    text: str = ""
    delay: float = 0.0
    close: bool = False  # SMTP: close the channel after the reply (421 does)
    smtp: bool = False  # `text` is a full SMTP reply line

    @property
    def reply(self) -> str:
        """What the client got, for the log: `503`, `421 4.3.3`, `hang`, `slow 2.0s`."""
        if self.act is Act.REPLY:
            # an SMTP reply line is logged as code + enhanced code, an HTTP error as its status
            return " ".join(self.text.split()[:2]) if self.smtp else str(self.status)
        if self.act is Act.SLOW:
            return f"slow {self.delay:g}s"
        return str(self.act)


PASS = Action(Act.PASS, Outcome.OK)


@dataclass(frozen=True, slots=True)
class Param:
    """A fault parameter: its type, default (None: optional, absent) and a range check."""

    kind: type
    default: Any
    check: Callable[[Any], bool] = lambda _v: True
    hint: str = ""


Builder = Callable[[str, Mapping[str, Any]], Action]


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault name's channels, parameters and how it becomes an `Action` on a channel."""

    channels: frozenset[str]
    params: Mapping[str, Param]
    build: Builder
    doc: str


def http_outcome(status: int) -> Outcome:
    """The default table's outcome of an HTTP status the simulator sent."""
    if 200 <= status <= 299:
        return Outcome.OK
    return Outcome.SERVER_ERROR if status >= 500 else Outcome.CLIENT_ERROR


#: SparkPost's own messages for statuses Python's registry does not name
_SPARKPOST_MESSAGES = {420: "Exceed Sending Limit"}


def _http_error(status: int, message: str | None = None) -> Action:
    expected = http_outcome(status)
    if message is None:
        try:
            message = http.HTTPStatus(status).phrase
        except ValueError:  # 420 and other statuses outside the IANA registry
            message = _SPARKPOST_MESSAGES.get(status, f"HTTP {status}")
    text = message
    return Action(Act.REPLY, expected, status=status, text=text)


def _smtp_reply(text: str, expected: Outcome) -> Action:
    code = int(text[:3])
    # RFC 5321 4.2.2: a 421 reply closes the transmission channel
    return Action(Act.REPLY, expected, status=code, text=text, close=code == 421, smtp=True)


# SMTP replies, each with the outcome the README's table gives it (the enhanced code decides)
SMTP_421 = _smtp_reply(
    "421 4.3.3 [internal] Service temporarily unavailable, closing channel", Outcome.SERVER_ERROR
)
SMTP_451 = _smtp_reply("451 4.3.0 Temporary local problem, try again later", Outcome.SERVER_ERROR)
SMTP_550 = _smtp_reply("550 5.7.1 Unconfigured Sending Domain", Outcome.CLIENT_ERROR)
SMTP_554 = _smtp_reply("554 5.3.0 Internal error, message not accepted", Outcome.SERVER_ERROR)
SMTP_THROTTLED = _smtp_reply(
    "421 4.7.0 [throttled] Message rate limit exceeded, try again later", Outcome.CLIENT_ERROR
)


def _status_check(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: low <= v <= high


def _build_ok(_channel: str, _p: Mapping[str, Any]) -> Action:
    return PASS


def _build_5xx(channel: str, p: Mapping[str, Any]) -> Action:
    if channel == "smtp":
        # SMTP has no 5xx "internal error" without an enhanced code; 451 4.3.0 is how a
        # broken MTA says it
        return SMTP_451
    return _http_error(
        p["status"], "Something went wrong on our end" if p["status"] == 500 else None
    )


def _build_4xx(channel: str, p: Mapping[str, Any]) -> Action:
    if channel == "smtp":
        return SMTP_550
    return _http_error(p["status"])


def _build_429(channel: str, _p: Mapping[str, Any]) -> Action:
    if channel == "smtp":
        return SMTP_THROTTLED
    return _http_error(429, "Too many requests, slow down")


def _build_slow(_channel: str, p: Mapping[str, Any]) -> Action:
    timeout_at = p.get("timeout_at")
    late = timeout_at is not None and p["delay"] >= timeout_at
    return Action(Act.SLOW, Outcome.TIMEOUT if late else Outcome.OK, delay=p["delay"])


def _fixed(action: Action) -> Builder:
    return lambda _channel, _p: action


_STATUS_5XX = Param(int, 500, _status_check(500, 599), "500..599")
_STATUS_4XX = Param(int, 401, _status_check(400, 499), "400..499")

#: fault name → spec. `fraction` is handled by `parse_fault` around an inner fault.
FAULTS: dict[str, FaultSpec] = {
    "ok": FaultSpec(frozenset(CHANNELS), {}, _build_ok, "healthy"),
    "5xx": FaultSpec(
        frozenset(CHANNELS),
        {"status": _STATUS_5XX},
        _build_5xx,
        "API: the status (500); SMTP: 451 4.3.0",
    ),
    "4xx": FaultSpec(
        frozenset(CHANNELS),
        {"status": _STATUS_4XX},
        _build_4xx,
        "API: the status (401); SMTP: 550 5.7.1",
    ),
    "429": FaultSpec(frozenset(CHANNELS), {}, _build_429, "API: 429; SMTP: 421 4.7.0 throttled"),
    "hang": FaultSpec(
        frozenset(CHANNELS), {}, _fixed(Action(Act.HANG, Outcome.TIMEOUT)), "never answer"
    ),
    "slow": FaultSpec(
        frozenset(CHANNELS),
        {
            "delay": Param(float, 2.0, lambda v: 0 <= v <= 3600, "0..3600 seconds"),
            "timeout_at": Param(float, None, lambda v: v > 0, "> 0 seconds"),
        },
        _build_slow,
        "answer after `delay` s; expected timeout iff delay >= timeout_at",
    ),
    "reset": FaultSpec(
        frozenset(CHANNELS),
        {},
        _fixed(Action(Act.RESET, Outcome.SERVER_ERROR)),
        "TCP RST, no reply",
    ),
    "drop_after_data": FaultSpec(
        frozenset(CHANNELS),
        {},
        _fixed(Action(Act.DROP, Outcome.SERVER_ERROR)),
        "read the request/message, close without a reply",
    ),
    "tls_fail": FaultSpec(
        frozenset({"smtp"}),
        {},
        _fixed(Action(Act.TLS_FAIL, Outcome.SERVER_ERROR)),
        "STARTTLS answered 220, then garbage",
    ),
    "smtp_421": FaultSpec(frozenset({"smtp"}), {}, _fixed(SMTP_421), SMTP_421.text),
    "smtp_451": FaultSpec(frozenset({"smtp"}), {}, _fixed(SMTP_451), SMTP_451.text),
    "smtp_550": FaultSpec(frozenset({"smtp"}), {}, _fixed(SMTP_550), SMTP_550.text),
    "smtp_554": FaultSpec(frozenset({"smtp"}), {}, _fixed(SMTP_554), SMTP_554.text),
}
FRACTION = "fraction"
FAULT_NAMES = (*FAULTS, FRACTION)
#: one line per fault name, for `/_sim/state` and `availmon simulate --help` style listings
FAULT_DOCS: dict[str, str] = {name: spec.doc for name, spec in FAULTS.items()} | {
    FRACTION: "inner `fault` (default 5xx) on every 1/`fraction` attempt by arrival"
}


@dataclass(slots=True)
class ActiveFault:
    """The fault in force on one channel, with its arrival counter.

    With `every` set (the `fraction` fault), attempt n (0-based, counted at `stage`) fails
    when ceil((n+1)·f) > ceil(n·f): fraction 0.5 fails the first attempt of each pair,
    1/3 the first of each triple, deterministically.
    """

    name: str
    channel: str
    params: dict[str, Any]
    action: Action
    stage: str
    every: Fraction | None = None
    arrivals: int = field(default=0)

    def decide(self, stage: str) -> Action | None:
        """The action for the next attempt reaching `stage`; None when the fault is elsewhere."""
        if stage != self.stage:
            return None
        n = self.arrivals
        self.arrivals = n + 1
        if self.every is None:
            return self.action
        p, q = self.every.numerator, self.every.denominator
        # integer ceil division: -(-a // b)
        if -(-(n + 1) * p // q) > -(-n * p // q):
            return self.action
        return PASS

    def describe(self) -> dict[str, Any]:
        return {"fault": self.name, "params": dict(self.params)}


def _coerce(fault: str, name: str, spec: Param, value: Any) -> Any:
    if spec.kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        value = float(value)
    elif spec.kind is int and isinstance(value, str) and value.isdigit():
        value = int(value)
    elif spec.kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if not isinstance(value, spec.kind) or isinstance(value, bool) or not spec.check(value):
        raise ValueError(
            f"fault {fault!r}: {name}={value!r} is invalid (want {spec.hint or spec.kind.__name__})"
        )
    return value


def _params(fault: str, spec: FaultSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(spec.params))
    if unknown:
        allowed = ", ".join(spec.params) or "none"
        raise ValueError(f"fault {fault!r}: unknown parameter {unknown[0]!r} (allowed: {allowed})")
    out: dict[str, Any] = {}
    for name, p in spec.params.items():
        if name in given:
            out[name] = _coerce(fault, name, p, given[name])
        elif p.default is not None:
            out[name] = p.default
    return out


def parse_fault(channel: str, fault: str, params: Mapping[str, Any]) -> dict[str, ActiveFault]:
    """Validate a fault for `channel` (api, smtp or both); one `ActiveFault` per channel.

    Raises ValueError with a one-line message naming the bad channel, fault or parameter.
    `stage` applies to SMTP only (the API copy of a `both` fault ignores it); `inner` is
    accepted as another name for fraction's `fault` parameter.
    """
    if channel not in CHANNEL_CHOICES:
        raise ValueError(f"channel {channel!r} is not one of {', '.join(CHANNEL_CHOICES)}")
    if fault not in FAULT_NAMES:
        raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULT_NAMES)})")
    given = dict(params)
    stage = given.pop("stage", None)
    if stage is not None and stage not in SMTP_STAGES:
        raise ValueError(f"stage {stage!r} is not one of {', '.join(SMTP_STAGES)}")
    if stage is not None and channel == "api":
        raise ValueError("stage applies to the smtp channel only")
    every: Fraction | None = None
    name = fault
    if fault == FRACTION:
        if "inner" in given:
            given["fault"] = given.pop("inner")
        raw = given.pop("fraction", 0.5)
        frac = _coerce(
            fault, "fraction", Param(float, None, lambda v: 0 < v <= 1, "0 < f <= 1"), raw
        )
        every = Fraction(frac).limit_denominator(1000)
        name = given.pop("fault", "5xx")
        if not isinstance(name, str) or name not in FAULTS or name == "ok":
            raise ValueError(
                f"fault 'fraction': inner fault {name!r} must be one of "
                f"{', '.join(n for n in FAULTS if n != 'ok')}"
            )
    spec = FAULTS[name]
    targets = CHANNELS if channel == "both" else (channel,)
    for ch in targets:
        if ch not in spec.channels:
            raise ValueError(f"fault {name!r} does not apply to the {ch} channel")
    values = _params(name, spec, given)
    shown = dict(values)
    if every is not None:
        shown = {"fraction": float(every), "fault": name, **values}
    out: dict[str, ActiveFault] = {}
    for ch in targets:
        if ch == "api":
            where = API_STAGE
        elif name == "tls_fail":
            where = STARTTLS_STAGE
        else:
            where = stage or DEFAULT_SMTP_STAGE
        ch_params = dict(shown)
        if ch == "smtp" and name != "tls_fail":
            ch_params["stage"] = where
        out[ch] = ActiveFault(fault, ch, ch_params, spec.build(ch, values), where, every)
    return out
