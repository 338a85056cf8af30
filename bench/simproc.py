"""The simulator in a child process for bench/ scripts (so its CPU is not the bench's)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def simulator(wait: float = 15.0) -> Iterator[str | None]:
    """`availmon simulate` (plain HTTP) on a free port; yields its account URL, or None
    when it did not listen within `wait` seconds. Stopped on exit."""
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "monitor", "simulate", "--host", "127.0.0.1", "--http-port",
         str(port), "--smtp-port", str(free_port()), "--no-tls"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        url: str | None = None
        for _ in range(int(wait / 0.1)):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    url = f"http://127.0.0.1:{port}/api/v1/account"
                    break
            time.sleep(0.1)
        yield url
    finally:
        sim.terminate()
        sim.wait(10)
