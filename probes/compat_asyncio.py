"""CPython 3.11's asyncio, patched in one place, on that version only.

`backport_transport_cycle_fix` changes a private method of asyncio's selector socket
transport the way CPython 3.12 changed it (gh-100348); `availmon run` calls it at start
(monitor/daemon.py), never an import. On any other version it does nothing.
"""

from __future__ import annotations

import sys
from typing import Any


def backport_transport_cycle_fix() -> None:
    """Free a closed socket transport by reference counting on CPython 3.11.

    3.11's selector socket transport keeps a bound method of itself (``_read_ready_cb``):
    every closed connection is a reference cycle, with its socket object in it, that only
    the cyclic collector frees (see monitor/gcpacer.py for why that matters here).
    CPython 3.12 drops the reference on close (gh-100348); this does the same on 3.11,
    once the connection is lost (after close, abort or a reset: the reader is removed
    and the protocol told, so the callback is never called again). Idempotent; nothing
    to do on 3.12 and later.
    """
    if sys.version_info >= (3, 12):
        return
    from asyncio import selector_events

    cls: Any = getattr(selector_events, "_SelectorSocketTransport")  # noqa: B009 (private)
    if getattr(cls, "_availmon_cycle_fix", False):
        return
    lost = cls._call_connection_lost

    def _call_connection_lost(self: Any, exc: BaseException | None) -> None:
        try:
            lost(self, exc)
        finally:
            self._read_ready_cb = None

    cls._call_connection_lost = _call_connection_lost
    cls._availmon_cycle_fix = True
