"""The probes and the simulator agree: for every fault, the outcome a probe reports is the one
the simulator's ledger says the SLA rules give what it did."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from monitor.clock import SystemClock
from monitor.simulator import Simulator
from probes import PROBES
from probes.base import ProbeContext
from probes.http import HttpProbeConfig
from probes.smtp import SmtpProbeConfig

MakeCtx = Callable[..., ProbeContext]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(tls=True) as s:
        yield s


def _ctx(make_ctx: MakeCtx, timeout: float) -> ProbeContext:
    base = make_ctx(timeout)
    # the simulator keys attempts by "probe:second:slot"
    return ProbeContext(
        attempt_id=f"p:{base.second}:0",
        second=base.second,
        slot=0,
        deadline=base.deadline,
        timeout=timeout,
    )


async def _one(sim: Simulator, channel: str, make_ctx: MakeCtx, deadline: float) -> tuple[Any, Any]:
    cfg: HttpProbeConfig | SmtpProbeConfig
    if channel == "api":
        cfg = HttpProbeConfig(name="p", url=f"{sim.http_url}/api/v1/account")
    else:
        cfg = SmtpProbeConfig(
            name="p",
            host="127.0.0.1",
            port=sim.smtp_port,
            tls="starttls",
            ca_file=sim.ca_file,
            ehlo_name="probe.test",
        )
    probe = PROBES[cfg.type](cfg, SystemClock())
    try:
        result = await probe.run(_ctx(make_ctx, deadline))
    finally:
        await probe.close()
    records = [r for r in sim.log if r.channel == channel]
    assert records, f"the simulator saw no {channel} attempt"
    return result, records[-1]


FAULTS: list[tuple[str, str, dict[str, Any], float]] = [
    # id, channel, fault + params, probe timeout
    ("api-ok", "api", {"fault": "ok"}, 10.0),
    ("api-503", "api", {"fault": "5xx", "status": 503}, 10.0),
    ("api-401", "api", {"fault": "4xx", "status": 401}, 10.0),
    ("api-429", "api", {"fault": "429"}, 10.0),
    ("api-hang", "api", {"fault": "hang"}, 0.5),
    ("api-slow-in-time", "api", {"fault": "slow", "delay": 0.05}, 10.0),
    ("api-slow-late", "api", {"fault": "slow", "delay": 5.0, "timeout_at": 0.5}, 0.5),
    ("api-reset", "api", {"fault": "reset"}, 10.0),
    ("api-drop", "api", {"fault": "drop_after_data"}, 10.0),
    ("smtp-ok", "smtp", {"fault": "ok"}, 10.0),
    ("smtp-5xx", "smtp", {"fault": "5xx"}, 10.0),
    ("smtp-4xx", "smtp", {"fault": "4xx"}, 10.0),
    ("smtp-throttled", "smtp", {"fault": "429"}, 10.0),
    ("smtp-hang", "smtp", {"fault": "hang"}, 0.5),
    ("smtp-reset", "smtp", {"fault": "reset"}, 10.0),
    ("smtp-drop", "smtp", {"fault": "drop_after_data"}, 10.0),
    ("smtp-tls_fail", "smtp", {"fault": "tls_fail"}, 10.0),
    ("smtp-421", "smtp", {"fault": "smtp_421"}, 10.0),
    ("smtp-451", "smtp", {"fault": "smtp_451"}, 10.0),
    ("smtp-550", "smtp", {"fault": "smtp_550"}, 10.0),
    ("smtp-554", "smtp", {"fault": "smtp_554"}, 10.0),
    ("smtp-421-at-banner", "smtp", {"fault": "smtp_421", "stage": "banner"}, 10.0),
    ("smtp-451-at-rcpt", "smtp", {"fault": "smtp_451", "stage": "rcpt"}, 10.0),
    ("smtp-hang-at-ehlo", "smtp", {"fault": "hang", "stage": "ehlo"}, 0.5),
]


@pytest.mark.parametrize(
    ("channel", "fault", "deadline"),
    [row[1:] for row in FAULTS],
    ids=[row[0] for row in FAULTS],
)
async def test_probe_outcome_matches_simulator_truth(
    sim: Simulator, make_ctx: MakeCtx, channel: str, fault: dict[str, Any], deadline: float
) -> None:
    params = dict(fault)
    sim.set_fault(channel, params.pop("fault"), **params)
    result, record = await _one(sim, channel, make_ctx, deadline)
    assert result.outcome is record.expected, (result.detail, record.reply)
    if channel == "api":
        # the attempt header reached the target: the simulator keyed it to our attempt
        assert record.attempt_id is not None and record.attempt_id.startswith("p:")
