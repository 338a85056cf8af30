"""What the two protocol sides (`api.py`, `smtp.py`) see of their simulator.

`monitor.simulator.server.Simulator` is the one implementation; the sides name only this
protocol, so the server imports them and they never import the server (no import cycle).
"""

from __future__ import annotations

from typing import Any, Protocol

from monitor.simulator.dnsbl import DnsblServer
from monitor.simulator.faults import ActiveFault
from monitor.simulator.ledger import Ledger, LogRecord
from probes.base import Outcome


class Host(Protocol):
    api_key: str | None
    smtp_user: str
    smtp_password: str | None
    control: bool
    ledger: Ledger
    faults: dict[str, ActiveFault]
    dnsbl: DnsblServer

    def set_fault(self, channel: str, fault: str, /, **params: Any) -> None: ...

    def record(
        self,
        channel: str,
        attempt_id: str | None,
        vantage: str | None,
        fault: str,
        reply: str,
        expected: Outcome,
    ) -> LogRecord: ...

    def ground_truth(
        self, start: int | None = None, end: int | None = None
    ) -> dict[str, set[int]]: ...

    def state(self) -> dict[str, Any]: ...
