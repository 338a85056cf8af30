"""The store backends the contract suite runs against: a name → a function that opens an
empty, migrated store in a temporary folder. A new backend is one line here (and its
server, where it needs one, started by a fixture or by .ci/run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from monitor.store import open_store
from monitor.store.base import Store
from tests import pgserver

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda tmp: open_store(f"sqlite:///{tmp}/contract.db"),
    # a schema of its own in the session's throw-away cluster (tests/pgserver.py)
    "postgresql": lambda tmp: open_store(pgserver.fresh_url()),
}

#: the backends built on the shared SQL statements (monitor/store/sql.py): the tests of
#: those statements (test_sql_*.py) run on each
SQL_BACKENDS = BACKENDS
