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

import aiohttp

from alerting.notifiers import NOTIFIERS
from monitor.clock import SystemClock
from monitor.config import Settings
from monitor.schema import ConfigError
from monitor.store import BACKENDS
from probes import PROBES


async def preflight(settings: Settings, source: str) -> None:
    """Raise `ConfigError` (one line) for the first part of `settings` that cannot work."""
    clock = SystemClock()
    scheme = settings.store.url.partition("://")[0]
    if scheme not in BACKENDS:
        built = ", ".join(f"{s}://" for s in BACKENDS)
        raise ConfigError(
            f"{source}: store.url: no {scheme}:// backend in this availmon (built: {built})"
        )
    host, port = settings.monitor.host_port
    try:
        await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(f"{source}: monitor.listen: cannot resolve {host!r}: {why}") from None
    for i, svc in enumerate(settings.services):
        for j, cfg in enumerate(svc.probes):
            try:
                probe = PROBES[cfg.type](cfg, clock)
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
