"""Probes: one module per protocol, each turning one attempt at a target into an `Attempt`.

Importing this package registers every probe type in `PROBES` (``http``, ``smtp``) and
changes nothing else in the process: the daemon installs the asyncio backport
(`probes.compat_asyncio.backport_transport_cycle_fix`) when it starts (monitor/daemon.py).
"""

# imported for their side effect: @register fills PROBES
from probes import http, smtp
from probes.base import (
    PROBES,
    Attempt,
    Outcome,
    Probe,
    ProbeContext,
    register,
)

__all__ = ["PROBES", "Attempt", "Outcome", "Probe", "ProbeContext", "http", "register", "smtp"]
