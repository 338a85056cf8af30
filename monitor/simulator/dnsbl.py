"""A small DNS server on loopback serving blocklist zones, for the demo and the tests.

It answers every name as a DNSBL does: NXDOMAIN (not listed) unless the name was listed
(`list`: A records, and a TXT reason), over UDP and TCP on one port. Faults, for every
zone (``"*"``) or one: ``servfail``, ``refused``, ``hang`` (no answer at all) or
``code`` (every query answered with one A record, e.g. Spamhaus's 127.255.255.254).
Set through `DnsblServer` directly or the simulator's control API, ``POST /_sim/dnsbl``
with ``{"action": "list", "target": "192.0.2.10", "zone": "zen.spamhaus.org", "codes":
["127.0.0.2"], "txt": "..."}``, ``{"action": "delist", ...}`` or ``{"action": "fault",
"zone": "*", "fault": "servfail"}`` (``"ok"`` clears it).

Messages are parsed and built with dnspython; only the transport is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import struct
from dataclasses import dataclass
from typing import Any, Literal, cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from probes.dnsbl import Zone, query_name

log = logging.getLogger(__name__)

FAULTS = ("ok", "servfail", "refused", "hang", "code")


@dataclass(frozen=True, slots=True)
class Listing:
    codes: tuple[str, ...]
    txt: str | None


class DnsblServer:
    """UDP and TCP on `host`:`port` (0: any free port, read `port` after `start`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        #: query name (lower case, no trailing dot) → what it answers
        self.listed: dict[str, Listing] = {}
        #: zone or "*" → (fault, code)
        self.faults: dict[str, tuple[str, str | None]] = {}
        #: query names asked, in order (the tests read it; bounded), and how many came by TCP
        self.asked: list[str] = []
        self.tcp_queries = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._held: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ control
    def list(
        self,
        target: str,
        zone: str,
        codes: list[str] | tuple[str, ...] = ("127.0.0.2",),
        txt: str | None = None,
        dqs_key: str | None = None,
    ) -> None:
        for code in codes:
            try:
                ipaddress.IPv4Address(code)
            except ValueError:
                raise ValueError(f"{code!r} is not an IPv4 address") from None
        self.listed[self._name(target, zone, dqs_key)] = Listing(tuple(codes), txt)

    def delist(self, target: str, zone: str, dqs_key: str | None = None) -> None:
        self.listed.pop(self._name(target, zone, dqs_key), None)

    def set_fault(self, zone: str, fault: str, code: str | None = None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
        if fault == "code":
            if code is None:
                raise ValueError("fault 'code' needs a code (an IPv4 address)")
            try:
                ipaddress.IPv4Address(code)
            except ValueError:
                raise ValueError(f"{code!r} is not an IPv4 address") from None
        if fault == "ok":
            self.faults.pop(zone, None)
        else:
            self.faults[zone] = (fault, code)

    def control(self, body: dict[str, Any]) -> dict[str, Any]:
        """One control request (the simulator's ``POST /_sim/dnsbl``); ValueError when
        it makes no sense."""
        action = body.get("action")
        try:
            if action in ("list", "delist"):
                target, zone = str(body["target"]), str(body["zone"]).lower()
                if action == "list":
                    codes = body.get("codes") or ["127.0.0.2"]
                    codes = [codes] if isinstance(codes, str) else codes
                    txt = body.get("txt")
                    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                        raise ValueError('"codes" must be a list of IPv4 addresses')
                    if txt is not None and not isinstance(txt, str):
                        raise ValueError('"txt" must be a string')
                    self.list(target, zone, codes, txt)

                else:
                    self.delist(target, zone)
            elif action == "fault":
                self.set_fault(
                    str(body.get("zone", "*")).lower(), str(body["fault"]), body.get("code")
                )
            else:
                raise ValueError("action must be list, delist or fault")
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]!r}") from None
        return self.state()

    def state(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "listed": {n: {"codes": list(v.codes), "txt": v.txt} for n, v in self.listed.items()},
            "faults": {z: {"fault": f, "code": c} for z, (f, c) in self.faults.items()},
        }

    @staticmethod
    def _name(target: str, zone: str, dqs_key: str | None) -> str:
        kind: Literal["ip", "domain"] = "ip"
        try:
            ipaddress.ip_address(target)
        except ValueError:
            kind = "domain"
        dqs = zone.split(".")[0] if zone.endswith(".spamhaus.org") else None
        return query_name(target, Zone(zone, kind, {}, dqs), dqs_key).lower()

    # ------------------------------------------------------------------ serving
    async def start(self) -> None:
        """UDP and TCP on one port. With port 0 the kernel picks one free for UDP; TCP may
        hold that number already (a client connection's local port): then another."""
        loop = asyncio.get_running_loop()
        wanted = self.port
        for attempt in range(50):
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, wanted)
            )
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._tcp_client, self.host, self.port)
                return
            except OSError as exc:
                self._udp.close()
                self._udp = None
                if wanted or exc.errno != errno.EADDRINUSE or attempt == 49:
                    raise

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()
        for task in list(self._held):
            task.cancel()
        await asyncio.gather(*self._held, return_exceptions=True)

    async def __aenter__(self) -> DnsblServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def answer(self, wire: bytes, tcp: bool = True) -> bytes | None:
        """The reply to one query (None: hang, say nothing). Over UDP a reply longer than
        the client takes (512 bytes without EDNS) is sent truncated (TC), as a server
        does, so the client asks again over TCP."""
        try:
            q = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not q.question:
            return None
        question = q.question[0]
        name = question.name.to_text().rstrip(".").lower()
        if len(self.asked) < 100_000:
            self.asked.append(name)
        r = dns.message.make_response(q)
        r.flags |= dns.flags.RA
        fault = self._fault(name)
        if fault is not None:
            kind, code = fault
            if kind == "hang":
                return None
            if kind == "servfail":
                r.set_rcode(dns.rcode.SERVFAIL)
                return r.to_wire()
            if kind == "refused":
                r.set_rcode(dns.rcode.REFUSED)
                return r.to_wire()
            if question.rdtype == dns.rdatatype.A:
                r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", str(code)))
            return r.to_wire()
        listing = self.listed.get(name)
        if listing is None:
            r.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", *listing.codes))
        elif question.rdtype == dns.rdatatype.TXT and listing.txt:
            raw = listing.txt.encode()
            chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)]
            rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.TXT)
            rrset.add(rdata, 60)
            r.answer.append(rrset)
        out = r.to_wire()
        limit = max(512, q.payload if q.edns >= 0 else 512)
        if not tcp and len(out) > limit:
            r.answer.clear()
            r.flags |= dns.flags.TC
            out = r.to_wire()
        return out

    def _fault(self, name: str) -> tuple[str, str | None] | None:
        for zone, fault in self.faults.items():
            if zone != "*" and (name == zone or name.endswith("." + zone)):
                return fault
        return self.faults.get("*")

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._held.add(task)
        try:
            while True:
                head = await reader.readexactly(2)
                wire = await reader.readexactly(struct.unpack("!H", head)[0])
                self.tcp_queries += 1
                reply = self.answer(wire)
                if reply is None:
                    await reader.read()  # hang: until the client gives up
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._held.discard(task)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsblServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.server.answer(data, tcp=False)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
