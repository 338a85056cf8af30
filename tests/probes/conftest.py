"""Fixtures for the probe tests: a trustme CA, server/client TLS contexts, a context factory."""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from monitor.clock import SystemClock
from probes.base import ProbeContext

_ids = itertools.count()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A server context whose certificate (127.0.0.1, localhost) the test CA signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def foreign_tls() -> ssl.SSLContext:
    """A server context signed by a CA the probes do not trust."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def clock() -> SystemClock:
    return SystemClock()


@pytest.fixture
def make_ctx(clock: SystemClock) -> Callable[..., ProbeContext]:
    """`make_ctx(timeout)` → a ProbeContext for one attempt with a fresh attempt id.

    The default deadline is generous (attempts that should succeed end long before it,
    even on a loaded machine); tests that expect a timeout pass a short one.
    """

    def make(timeout: float = 10.0) -> ProbeContext:
        n = next(_ids)
        return ProbeContext(
            attempt_id=f"t-{n}",
            second=int(clock.wall()),
            slot=0,
            deadline=clock.monotonic() + timeout,
            timeout=timeout,
        )

    return make
