"""A throw-away PostgreSQL cluster for the tests: Debian's `initdb` and `pg_ctl`
(/usr/lib/postgresql/*/bin) in a temporary folder, listening on 127.0.0.1 only, started
on first use, stopped by PID at the end of the session (tests/conftest.py). As root (CI),
the server runs as the `postgres` user, which PostgreSQL requires.

`fresh_url()` gives each caller a schema of its own in one database, so tests do not see
each other's rows and no database has to be created per test.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

BIN_DIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
BIN = Path(BIN_DIRS[-1]) if BIN_DIRS else None
DATABASE = "availmon"
#: a role that must give its password (the rest are trusted on loopback)
PASSWORD_USER, PASSWORD = "availmon_pw", "s3cret-pg-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One PostgreSQL server in a temporary folder."""

    def __init__(self) -> None:
        if BIN is None or not (BIN / "initdb").exists():
            raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="availmon-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.pid: int | None = None
        self._as: list[str] = []
        self._options = ""
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            [*self._as, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        assert BIN is not None
        self._run(
            str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-instructions",
        )  # fmt: skip
        # one role signs in with a password (scram), the rest are trusted on loopback
        (self.data / "pg_hba.conf").write_text(
            f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\nlocal all all trust\n"
        )
        self._options = options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -k {self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=300"
        )
        self._run(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        self.pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        self.sql(f"CREATE DATABASE {DATABASE}", database="postgres")
        self.sql(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")
        self.sql(f"GRANT ALL ON DATABASE {DATABASE} TO {PASSWORD_USER}")

    def url(self, database: str = DATABASE, user: str = "postgres", **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def sql(self, statement: str, database: str = DATABASE) -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)

    def fresh_url(self) -> str:
        """A URL whose tables go to a new, empty schema."""
        schema = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE SCHEMA {schema}")
        return self.url(options=f"-csearch_path%3D{schema}")

    def pause(self) -> None:
        """Stop the server by PID (fast shutdown), keeping its data: a database outage."""
        self._halt()

    def resume(self) -> None:
        """Start the paused server again, on the same port with the same data."""
        assert BIN is not None
        self._run(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-o", self._options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        self.pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def _halt(self) -> None:
        pid, self.pid = self.pid, None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            for _ in range(300):  # at most 30 s
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) by PID; SIGKILL if it does not end; the folder removed."""
        self._halt()
        shutil.rmtree(self.root, ignore_errors=True)


_shared: Cluster | None = None


def shared() -> Cluster:
    """The session's cluster, started on first use; skips the test when PostgreSQL is not
    installed (.ci/run installs it)."""
    global _shared
    if _shared is None:
        try:
            cluster = Cluster()
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
        cluster.start()
        _shared = cluster
    return _shared


def fresh_url() -> str:
    return shared().fresh_url()


def stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
