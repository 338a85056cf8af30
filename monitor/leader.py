"""Leader election among the vantage points that share a store: a lease row with an epoch.

Every instance measures; exactly one — the **leader** — also runs the incident policy, the
outbox and the scheduled reports. The leader holds lease ``leader`` in the store
(`Store.acquire_lease`): it renews it every `renew` seconds for `ttl` seconds; an
instance that finds it free or expired takes it, and the store bumps its **epoch**. Every
write the leader's parts make goes through ``store.fenced("leader", epoch)``, so a leader
that was replaced while it paused (a stopped VM, a partition from the database) has its
late writes refused (`StaleEpoch`) instead of doubling a page. The holder id is unique per
process (``vantage/…``): a restarted instance is a new holder, never its own zombie.

An instance stops leading as soon as a renewal returns another holder, or — on a shared
store — when it could not renew for ``ttl − renew`` seconds (its lease may have run out on
the store's clock by then, and a successor may be taking over: safety before liveness, so
a leader cut off from the database stops paging from memory). On a store only one daemon
uses (SQLite) nobody else can lead: a store that refuses writes leaves the leader in place,
paging from memory (monitor/writer.py). With the defaults (ttl 10 s, renew 2 s) a
successor takes over at most ttl + renew = 12 s after the leader's last renewal: the
15-second failover promise. On SQLite (one process) the one instance always leads.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from monitor.store.base import Lease, Store

log = logging.getLogger("availmon.leader")

LEASE = "leader"
#: the defaults (monitor.lease_ttl_seconds, monitor.lease_renew_seconds)
TTL_SECONDS = 10.0
RENEW_SECONDS = 2.0


class LeaderElector:
    """Takes and renews the lease; tells `on_change(epoch or None)` when leadership is
    gained (the epoch) or lost (None). `on_change` runs on the loop and is awaited."""

    def __init__(
        self,
        store: Store,
        vantage: str,
        on_change: Callable[[int | None], Awaitable[None]],
        *,
        ttl: float = TTL_SECONDS,
        renew: float = RENEW_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < renew < ttl:
            raise ValueError(f"lease renewal ({renew} s) must be shorter than its ttl ({ttl} s)")
        self.store = store
        #: others may take over (a shared store); else leading lasts as long as the process
        self.shared = store.shared
        self.vantage = vantage
        self.holder = f"{vantage}/{uuid.uuid4().hex[:8]}"
        self.on_change = on_change
        self.ttl = ttl
        self.renew = renew
        self._monotonic = monotonic
        #: the epoch while leading, else None
        self.epoch: int | None = None
        #: the lease as last seen (ours or another's)
        self.lease: Lease | None = None
        #: monotonic time until which our lease is surely still ours
        self._valid_until = 0.0

    @property
    def leading(self) -> bool:
        return self.epoch is not None

    async def attempt(self) -> None:
        """One try to take or renew the lease (off the loop), and what follows from it."""
        asked = self._monotonic()
        try:
            lease = await asyncio.to_thread(self.store.acquire_lease, LEASE, self.holder, self.ttl)
            current = lease or await asyncio.to_thread(self.store.current_lease, LEASE)
        except Exception as exc:
            if self.leading and self.shared and self._monotonic() >= self._valid_until:
                log.warning(
                    "leader lease not renewed for %.0f s (%s): stepping down",
                    self.ttl - self.renew,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                )
                await self._set(None)
            return
        self.lease = current
        if lease is not None and lease.holder == self.holder:
            # counted from when we asked: the store's clock started the ttl no earlier
            self._valid_until = asked + self.ttl - self.renew
            if self.epoch != lease.epoch:
                if self.epoch is not None:  # re-taken after a gap: a new term
                    await self._set(None)
                await self._set(lease.epoch)
        elif self.leading:
            holder = current.holder if current is not None else "nobody"
            log.warning("leader lease taken over by %s: stepping down", holder)
            await self._set(None)

    async def _set(self, epoch: int | None) -> None:
        before = self.epoch
        self.epoch = epoch
        if epoch is not None:
            log.info(
                "leading (vantage %s, epoch %d%s)",
                self.vantage,
                epoch,
                f", after epoch {epoch - 1}" if epoch > 1 else "",
            )
        else:
            log.info("no longer leading (vantage %s, was epoch %s)", self.vantage, before)
        try:
            await self.on_change(epoch)
        except Exception:
            log.exception("leadership change failed")

    async def run(self) -> None:
        """Renew every `renew` seconds until cancelled. On a store no other daemon uses,
        only until the lease is taken (a store locked at the start delays it): nobody else
        can lead, and a renewal would be one more write every two seconds for nothing."""
        while not (self.leading and not self.shared):
            await asyncio.sleep(self.renew)
            await self.attempt()

    async def release(self) -> None:
        """A clean stop: end the lease now, so that a successor need not wait for it."""
        if not self.leading:
            return
        try:
            await asyncio.to_thread(self.store.release_lease, LEASE, self.holder)
        except Exception as exc:
            log.debug("releasing the leader lease failed: %r", exc)
        self.epoch = None
