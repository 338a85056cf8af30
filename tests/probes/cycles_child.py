"""Child process of test_probe_cycles: runs attempts of each probe given and reports, per
probe, the objects that only the cyclic garbage collector could free.

    python -m tests.probes.cycles_child '{"attempts": 5, "timeout": 0.5, "probes": [...]}'

prints one JSON object ``{name: {"outcome": ..., "garbage": N, "types": {...}}}``. A child,
so that the servers (in the parent) do not add garbage of their own to the count.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections import Counter
from typing import Any

from monitor.clock import SystemClock
from probes import PROBES
from probes.base import ProbeContext
from probes.compat_asyncio import backport_transport_cycle_fix
from probes.http import HttpProbeConfig
from probes.smtp import SmtpProbeConfig


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    timeout = float(spec["timeout"])
    for raw in spec["probes"]:
        model = HttpProbeConfig if raw["type"] == "http" else SmtpProbeConfig
        cfg = model.model_validate(raw)
        probe = PROBES[cfg.type](cfg, SystemClock())

        async def attempt(probe: Any, n: int) -> str:
            ctx = ProbeContext(f"p:{n}:0", n, 0, 0.0, timeout)
            return str((await probe.run(ctx)).outcome)

        await attempt(probe, 0)  # caches, lazy imports, the DNS cache: not per-attempt garbage
        await asyncio.sleep(0.2)  # closing callbacks run
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        outcome = ""
        for n in range(1, int(spec["attempts"]) + 1):
            outcome = await attempt(probe, n)
        await asyncio.sleep(0.3)  # closing callbacks run
        gc.collect()
        gc.set_debug(0)
        types = Counter(type(o).__name__ for o in gc.garbage)
        out[cfg.name] = {"outcome": outcome, "garbage": len(gc.garbage), "types": dict(types)}
        gc.garbage.clear()
        await probe.close()
    return out


if __name__ == "__main__":
    backport_transport_cycle_fix()  # as `availmon run` does at start (monitor/daemon.py)
    print(json.dumps(asyncio.run(measure(json.loads(sys.argv[1])))))
