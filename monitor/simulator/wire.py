"""How the simulator misbehaves on a connection: an abortive close (TCP RST) and a wait that
only the connection's loss (or the simulator's stop) ends."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import NoReturn


def abort_with_rst(transport: asyncio.BaseTransport | None) -> None:
    """Close at once with a TCP RST: SO_LINGER 0 makes close() discard and reset."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.Transport | asyncio.WriteTransport):
        transport.abort()
    else:
        transport.close()


async def wait_forever() -> NoReturn:
    """Never answer. The task is cancelled when the peer goes away or the simulator stops."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable: the future above is never resolved")
