"""The checks a config must pass before the daemon starts: `availmon run` makes them, and
`availmon check-config` makes exactly the same ones and nothing else.

The config model (monitor/config.py and the models beside each probe and notifier) checks
every field on its own. This adds what needs the parts themselves: every probe and every
notifier is constructed (and closed) as the daemon would construct it — without touching
the network — the listener's host must resolve, and the store URL must name a backend.
Nothing is bound, nothing is sent. Every failure is one `ConfigError` line,
``<file>: <toml path>: <why>``.
"""

from __future__ import annotations

import asyncio
import socket
import stat
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, SecretStr

from alerting.notifiers import NOTIFIERS
from monitor.clock import SystemClock
from monitor.config import Settings
from monitor.launcher import make_probe
from monitor.schema import ConfigError, unresolved_secrets
from monitor.store import BACKENDS


async def preflight(settings: Settings, source: str) -> None:
    """Raise `ConfigError` (one line) for the first part of `settings` that cannot work;
    every secret reference that cannot be resolved is named, not just the first."""
    check_secrets(settings, source)
    clock = SystemClock()
    scheme = settings.store.url.partition("://")[0]
    if scheme not in BACKENDS:
        built = ", ".join(f"{s}://" for s in BACKENDS)
        raise ConfigError(
            f"{source}: store.url: no {scheme}:// backend in this availmon (built: {built})"
        )
    if scheme == "postgresql":
        why = postgresql_url_problem(settings.store.url)
        if why is not None:
            raise ConfigError(f"{source}: store.url: not a valid PostgreSQL URL: {why}")
    if settings.report.signing_key is not None:
        from monitor.reports.seal import SealError, load_signing_key

        try:  # the whole PEM, read and parsed as the report job will (a file: off the loop)
            await asyncio.to_thread(load_signing_key, settings.report.signing_key)
        except SealError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    host, port = settings.monitor.host_port
    try:
        await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(f"{source}: monitor.listen: cannot resolve {host!r}: {why}") from None
    for i, svc in enumerate(settings.services):
        for j, cfg in enumerate(svc.probes):
            try:
                probe = make_probe(cfg, clock)  # as the launcher builds it
            except Exception as exc:  # ProbeConfigError, or a bug: either way it cannot run
                raise ConfigError(f"{source}: services[{i}].probes[{j}]: {exc}") from None
            await probe.close()
    async with aiohttp.ClientSession() as session:
        for k, ncfg in enumerate(settings.notifiers):
            try:
                notifier = NOTIFIERS[ncfg.type](ncfg, session, clock)
                notifier.validate()
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
            except Exception as exc:
                raise ConfigError(f"{source}: notifiers[{k}]: {exc}") from None
            await notifier.close()


def postgresql_url_problem(url: str) -> str | None:
    """What libpq would refuse in `url` (an unknown option, a port that is no number), or
    None; nothing is connected to."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(url)
    except ImportError as exc:
        return f"psycopg is not installed ({exc.name})"
    except Exception as exc:  # psycopg.ProgrammingError: one line of libpq's
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for port in str(params.get("port", "5432")).split(","):
        if not port.isdigit():
            return f"port {port!r} is not a number"
    return None


def check_secrets(settings: Settings, source: str) -> None:
    """Raise `ConfigError` naming every secret reference that cannot be resolved (reads
    files: off the event loop)."""
    missing = unresolved_secrets(settings)
    if missing:
        raise ConfigError(f"{source}: secrets not available: {'; '.join(missing)}")


def literal_secrets(model: BaseModel, raw: Any, path: str = "") -> list[str]:
    """TOML paths of secret fields whose value is written in the file itself (not an
    ``env:`` or ``file:`` reference)."""
    found: list[str] = []
    if not isinstance(raw, dict):
        return found
    for name in type(model).model_fields:
        if name not in raw:
            continue
        value, given = getattr(model, name), raw[name]
        where = f"{path}.{name}" if path else name
        if isinstance(value, SecretStr):
            if isinstance(given, str) and given and not given.startswith(("env:", "file:")):
                found.append(where)
        elif isinstance(value, BaseModel):
            found += literal_secrets(value, given, where)
        elif isinstance(value, dict) and isinstance(given, dict):
            for key, item in value.items():
                raw_item = given.get(key)
                if (
                    isinstance(item, SecretStr)
                    and isinstance(raw_item, str)
                    and raw_item
                    and not raw_item.startswith(("env:", "file:"))
                ):
                    found.append(f"{where}.{key}")
        elif isinstance(value, list) and isinstance(given, list):
            for i, (item, raw_item) in enumerate(zip(value, given, strict=False)):
                if isinstance(item, BaseModel):
                    found += literal_secrets(item, raw_item, f"{where}[{i}]")
    return found


def secret_warnings(settings: Settings, source: str) -> list[str]:
    """One warning when the config file can be read by others and holds literal secrets
    (anyone on the host could read the API key); nothing when it is private, or when
    every secret is an ``env:``/``file:`` reference."""
    path = Path(source)
    try:
        mode = path.stat().st_mode
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return []
    found = literal_secrets(settings, raw)
    if not found:
        return []
    shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    return [
        f"{source} is readable by others (mode {stat.S_IMODE(mode):o}) and holds secrets in "
        f"clear ({shown}); use env:NAME or file:PATH, or chmod 600 it"
    ]
