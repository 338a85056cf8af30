"""A TCP proxy on 127.0.0.1 that can cut a client off its target: the network between one
vantage point and the platform, in a test.

`FaultProxy(host, port)` listens on a free port and forwards every connection to the
target, byte for byte both ways, while its mode is ``"pass"``. In mode ``"hang"`` nothing
is forwarded any more on any connection: the ones open when the hang began are frozen
for good (their target side is closed, the client hears nothing, not even a FIN), and new
ones are accepted but never connected on, so every attempt through it ends in the
client's own timeout, a server-side timeout as the SLA counts it. Switching back to
``"pass"`` serves new connections again; frozen ones stay silent until their client gives
up. `stop()` closes the listener and every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["pass", "hang"]

#: bytes read at a time on either side
CHUNK = 65536


class _Conn:
    """One client connection and, unless it was accepted during a hang, its target side."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.target: asyncio.StreamWriter | None = None
        self.frozen = False

    def freeze(self) -> None:
        self.frozen = True
        if self.target is not None:
            self.target.close()

    def close(self) -> None:
        self.client.close()
        if self.target is not None:
            self.target.close()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.port = 0
        #: connections accepted, and how many of them were accepted during a hang
        self.accepted = self.accepted_hung = 0
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def set_mode(self, mode: Mode) -> None:
        if mode not in ("pass", "hang"):
            raise ValueError(f"mode {mode!r} is not 'pass' or 'hang'")
        self.mode = mode
        if mode == "hang":
            for conn in self._conns:
                conn.freeze()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self._conns:
            conn.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn(writer)
        self._conns.add(conn)
        self.accepted += 1
        pumps: set[asyncio.Task[None]] = set()
        try:
            down: asyncio.Task[None] | None = None
            if self.mode == "hang":
                self.accepted_hung += 1
                conn.frozen = True
            else:
                try:
                    target_reader, conn.target = await asyncio.open_connection(*self.target)
                except OSError:
                    return  # the target is not there: the client sees its connection closed
                if self.mode == "hang":  # the hang began while connecting
                    conn.freeze()
                down = asyncio.create_task(self._pump(conn, target_reader, writer))
                pumps.add(down)
            # a frozen connection still reads (and drops) what the client sends, only to
            # notice when it gives up
            up = asyncio.create_task(self._pump(conn, reader, conn.target))
            pumps.add(up)
            while True:
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                if up in done or not conn.frozen:
                    break  # the client went away, or (passing) the target did
                pumps -= done  # the target side ended because the hang closed it
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            conn.close()
            self._conns.discard(conn)
            self._tasks.discard(task)

    @staticmethod
    async def _pump(
        conn: _Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter | None
    ) -> None:
        """Copy `src` to `dst` until `src` ends; once frozen, read and drop."""
        with contextlib.suppress(OSError):
            while data := await src.read(CHUNK):
                if conn.frozen or dst is None:
                    continue
                # a write the hang cut short is dropped like the rest; a target that went
                # away while passing ends the other pump, which ends the connection
                with contextlib.suppress(OSError):
                    dst.write(data)
                    await dst.drain()
