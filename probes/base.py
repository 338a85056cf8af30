"""The probe contract: what an attempt is, how it ends, and the name→probe registry.

A probe never raises for a target fault. Whatever the target does (answers, hangs,
resets, speaks garbage) ends as an `Attempt` whose `outcome` says how it ended and whose
`detail` says why. Only a bug in availmon itself may raise; the launcher turns that into a
`probe_error` attempt too, so a second is never lost to an exception.

Exception tree::

    ProbeError            base of the errors a probe raises at *construction* (bad config)
    └── ProbeConfigError  a field of the probe's config cannot work (named in the message)
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field, field_validator

from monitor.schema import ConfigModel

if TYPE_CHECKING:
    from monitor.clock import Clock


class ProbeError(Exception):
    """Base of probe construction errors."""


class ProbeConfigError(ProbeError, ValueError):
    """A probe's configuration cannot work."""


class Outcome(enum.StrEnum):
    """How one attempt ended. Only TIMEOUT and SERVER_ERROR are qualifying failures."""

    OK = "ok"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    PROBE_ERROR = "probe_error"

    @property
    def qualifying(self) -> bool:
        """A failure the SLA counts: a server-side timeout or an internal service error."""
        return self in (Outcome.TIMEOUT, Outcome.SERVER_ERROR)

    @property
    def conclusive(self) -> bool:
        """The attempt reached the target and says something about it."""
        return self is not Outcome.PROBE_ERROR

    @property
    def seeing(self) -> bool:
        """The attempt tells whether the channel works (ok or a qualifying failure); a
        channel with none of these for a while is blind (a revoked key, a quota)."""
        return self is Outcome.OK or self.qualifying


#: the outcome sets, from the properties above (the one definition of each)
QUALIFYING: frozenset[Outcome] = frozenset(o for o in Outcome if o.qualifying)
CONCLUSIVE: frozenset[Outcome] = frozenset(o for o in Outcome if o.conclusive)
SEEING: frozenset[Outcome] = frozenset(o for o in Outcome if o.seeing)


class ProbeBase(ConfigModel):
    """What every probe's config has; each probe type subclasses it beside its code."""

    #: the registry key; each subclass narrows it to its own Literal
    type: str
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    channel: Literal["api", "smtp", "control"]
    attempts_per_second: int = Field(default=2, ge=1, le=1000)
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    #: fraction of a second added to every slot, so that probes do not all fire at once;
    #: None spreads probes of a service automatically
    phase_offset: float | None = Field(default=None, ge=0, lt=1)
    reuse_connections: bool = False
    enabled: bool = True
    #: classification overrides: key is an HTTP status ("503", "5xx") or an SMTP reply
    #: code ("421") or enhanced code ("4.7.1", "5.3"), value the outcome it means
    classify: dict[str, Outcome] = Field(default_factory=dict)

    @field_validator("classify")
    @classmethod
    def _classify_keys(cls, v: dict[str, Outcome]) -> dict[str, Outcome]:
        for key in v:
            if not re.fullmatch(r"[1-5](\d\d|xx)|[245](\.\d{1,3}){1,2}", key):
                raise ValueError(f"classify key {key!r} is not a status code, 'Nxx' or x.y.z")
        return v


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What the launcher tells a probe about one attempt.

    `attempt_id` travels to the target (HTTP header `X-Availmon-Attempt`, SMTP message
    header `X-Availmon-Attempt` and the Message-ID) so that a simulator or the platform's
    own logs can match the attempt. The launcher's ids are ``probe:second:slot@vantage``,
    unique across the vantage points sharing a store. `deadline` is on the clock's
    monotonic scale.
    """

    attempt_id: str
    second: int  # the UTC second of the scheduled slot the attempt belongs to
    slot: int  # index of the slot inside the second, 0..k-1
    deadline: float  # monotonic time by which the attempt must have ended
    timeout: float  # seconds, the same budget as `deadline` expresses


@dataclass(slots=True)
class Attempt:
    """One attempt's result.

    `detail` holds what was observed: `status` (HTTP), `code` / `enhanced` / `stage`
    (SMTP), `error` (an exception class name), `phase` timings, `rate_limited`, and
    `reason` for probe errors (for instance `monitor_stalled`).
    """

    attempt_id: str
    service: str
    channel: str
    probe: str
    second: int
    slot: int
    outcome: Outcome
    latency: float  # seconds from launch to end
    started: float  # wall-clock epoch seconds of the launch
    detail: dict[str, Any] = field(default_factory=dict)
    #: the vantage point that made it (set by the launcher; "" in hand-made attempts)
    vantage: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt_id": self.attempt_id,
            "service": self.service,
            "channel": self.channel,
            "probe": self.probe,
            "second": self.second,
            "slot": self.slot,
            "outcome": str(self.outcome),
            "latency": round(self.latency, 6),
            "started": self.started,
            "detail": self.detail,
            "vantage": self.vantage,
        }


@dataclass(frozen=True, slots=True)
class Result:
    """What a probe's `run` returns; the launcher wraps it into an `Attempt`."""

    outcome: Outcome
    detail: dict[str, Any] = field(default_factory=dict)


class Probe(Protocol):
    """One configured probe of one channel.

    `run` performs one attempt and returns its `Result`; it must finish by
    `ctx.deadline` (a timeout is a `Result(Outcome.TIMEOUT, …)`) and must not raise for
    anything the target does. `close` releases sessions and connections.
    """

    name: str
    channel: str

    async def run(self, ctx: ProbeContext) -> Result: ...

    async def close(self) -> None: ...


class ProbeType(Protocol):
    """A probe implementation as the registry holds it: the class, carrying its model."""

    @property
    def config_model(self) -> type[ProbeBase]: ...

    def __call__(self, config: Any, clock: Clock, /) -> Probe: ...


ProbeFactory = ProbeType

#: config `type` → the probe class, built as ``PROBES[cfg.type](cfg, clock)``
PROBES: dict[str, ProbeType] = {}


def register(type_name: str) -> Callable[[ProbeFactory], ProbeFactory]:
    """Class decorator: make a probe implementation available under config `type`."""

    def wrap(factory: ProbeFactory) -> ProbeFactory:
        PROBES[type_name] = factory
        return factory

    return wrap


#: code flags of frames that a coroutine or generator owns
_SUSPENDABLE = (
    inspect.CO_COROUTINE
    | inspect.CO_GENERATOR
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)


def forget_frames(exc: BaseException, *, finished: bool = False) -> None:
    """Clear the local variables of the frames in the tracebacks of `exc` and of the
    exceptions chained to it.

    A probe keeps an error's name and message, never its traceback; and asyncio and its
    helpers leave reference cycles through those frames (a future holding the exception
    whose traceback holds the future), which only the cyclic collector would free (see
    monitor/gcpacer.py). Clearing the frame of a coroutine or generator that is still
    suspended would close it — one that caught the error, kept it and went on — so those
    frames are left alone unless the caller knows every one of them has `finished` (an
    error straight from an awaited call that owns nothing else, e.g. ``loop.sock_recv``).
    Frames still executing (the caller's own) are skipped.
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if finished or not frame.f_code.co_flags & _SUSPENDABLE:
                with contextlib.suppress(RuntimeError):  # still executing
                    frame.clear()
            tb = tb.tb_next
        stack += (e.__cause__, e.__context__)
