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


def _postgresql(url: str, password: str | None = None) -> Store:
    try:
        from monitor.store import postgres
    except ImportError as exc:  # psycopg is an extra: pip install 'availmon[postgresql]'
        raise StoreError(
            f"store.url: postgresql:// needs psycopg ({exc.name} is not installed): "
            "pip install 'availmon[postgresql]'"
        ) from None
    return postgres.open_url(url, password)


#: URL scheme → a function that opens (and migrates) a store of that backend, given the
#: URL and the password (`store.password`, None when the URL or the driver has it)
BACKENDS: dict[str, Callable[[str, str | None], Store]] = {
    "sqlite": sqlite.open_url,
    "postgresql": _postgresql,
}


def open_store(url: str, password: str | None = None) -> Store:
    """Open the store `url` names (``sqlite:///path``, ``sqlite:///:memory:``,
    ``postgresql://…``), migrated."""
    scheme, sep, _ = url.partition("://")
    backend = BACKENDS.get(scheme) if sep else None
    if backend is None:
        raise StoreError(f"store.url: unsupported scheme in {url!r}")
    return guarded(backend(url, password))


__all__ = ["BACKENDS", "Store", "StoreError", "open_store"]
