"""A guard that catches store calls made on the event loop's thread (ARCHITECTURE.md
"Invariants": no blocking I/O on the loop).

With ``AVAILMON_STORE_GUARD=1`` in the environment (the test suite sets it, see
tests/conftest.py), `open_store` and the daemon wrap their store in `GuardedStore`: a call
from availmon's own code (modules of `monitor`, `probes`, `alerting`) on a thread that is
running an event loop raises `StoreCallOnLoop` and is recorded in `VIOLATIONS`, which the
suite checks after every test (the daemon logs and survives most exceptions, so raising
alone could go unnoticed). Calls from tests and tools are not checked: seeding a store
inside an async test is the test's business. Off by default: the check costs a frame
lookup per call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
from collections.abc import Callable
from typing import Any, cast

from monitor.store.base import Store

ENV = "AVAILMON_STORE_GUARD"
_OURS = ("monitor.", "probes.", "alerting.")

#: "module.function: Store.method" of every call caught, in order
VIOLATIONS: list[str] = []
_lock = threading.Lock()


class StoreCallOnLoop(AssertionError):
    """availmon's code called the store on the event loop's thread."""


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


#: calls of the contract that touch no database (a view of the store is built)
NO_IO = frozenset({"fenced"})


class GuardedStore:
    """A `Store` that refuses availmon's calls made on an event loop's thread."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def wrapped(self) -> Store:
        return self._store

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name.startswith("_") or not callable(value) or name in NO_IO:
            return value
        method = cast(Callable[..., Any], value)

        def checked(*args: Any, **kwargs: Any) -> Any:
            if _on_loop():
                frame = inspect.currentframe()
                caller = frame.f_back if frame is not None else None
                module = caller.f_globals.get("__name__", "") if caller is not None else ""
                if module.startswith(_OURS) and module != __name__:
                    where = f"{module}.{caller.f_code.co_name if caller else '?'}: Store.{name}"
                    with _lock:
                        VIOLATIONS.append(where)
                    raise StoreCallOnLoop(f"store call on the event loop's thread: {where}")
            return method(*args, **kwargs)

        # a partial, not a function: it must not bind as a method when copied to a class
        return functools.partial(checked)


def guarded(store: Store) -> Store:
    """`store` wrapped in the guard when it is on (and not already), else `store`."""
    if not enabled() or isinstance(store, GuardedStore):
        return store
    return cast(Store, GuardedStore(store))
