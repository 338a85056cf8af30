"""Persistence of verdicts, evidence, incidents, the outbox and maintenance windows.

`Store` (monitor/store/base.py) is the backend-neutral contract; a backend is one module
that implements it and one line in `BACKENDS`, keyed by the URL scheme of `store.url`.
Every backend passes the same contract suite (tests/monitor/store/test_contract.py).
"""

from __future__ import annotations

from collections.abc import Callable

from monitor.store import sqlite
from monitor.store.base import Store, StoreError
from monitor.store.guard import guarded

#: URL scheme → a function that opens (and migrates) a store of that backend
BACKENDS: dict[str, Callable[[str], Store]] = {
    "sqlite": sqlite.open_url,
}

#: schemes that are planned but not built, with what to say
_NOT_BUILT = {"postgresql": "the PostgreSQL backend is not built yet; use sqlite:///path"}


def open_store(url: str) -> Store:
    """Open the store `url` names (``sqlite:///path``, ``sqlite:///:memory:``), migrated."""
    scheme, sep, _ = url.partition("://")
    if scheme in _NOT_BUILT:
        raise StoreError(_NOT_BUILT[scheme])
    backend = BACKENDS.get(scheme) if sep else None
    if backend is None:
        raise StoreError(f"store.url: unsupported scheme in {url!r}")
    return guarded(backend(url))


__all__ = ["BACKENDS", "Store", "StoreError", "open_store"]
