"""Probes: one module per protocol, each turning one attempt at a target into an `Attempt`.

Importing this package registers every probe type in `PROBES` (``http``, ``smtp``), and
on CPython 3.11 backports 3.12's fix of a reference cycle in every closed asyncio socket
transport (`probes.base.backport_transport_cycle_fix`).
"""

# imported for their side effect: @register fills PROBES
from probes import http, smtp
from probes.base import (
    PROBES,
    Attempt,
    Outcome,
    Probe,
    ProbeContext,
    backport_transport_cycle_fix,
    register,
)

backport_transport_cycle_fix()

__all__ = ["PROBES", "Attempt", "Outcome", "Probe", "ProbeContext", "http", "register", "smtp"]
