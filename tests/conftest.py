"""Suite-wide: the guard against store calls on the event loop is on (monitor/store/guard.py).

Set in the environment at import, so daemons the tests start as subprocesses have it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ["AVAILMON_STORE_GUARD"] = "1"

from monitor.store import guard


@pytest.fixture(autouse=True)
def _no_store_call_on_the_loop() -> Iterator[None]:
    guard.VIOLATIONS.clear()
    yield
    caught, guard.VIOLATIONS[:] = list(guard.VIOLATIONS), []
    assert caught == [], f"availmon called the store on the event loop's thread: {caught}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The PostgreSQL cluster some tests started (tests/pgserver.py), stopped by PID."""
    from tests import pgserver

    pgserver.stop_shared()
