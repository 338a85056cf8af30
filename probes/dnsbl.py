"""Blocklist (DNSBL) checks: are the sending IPs and domains listed?

Not a per-second probe: a check asks every configured zone about every target once per
`interval_seconds` (default 300; the lists rate-limit), and only the leader runs it
(monitor/blocklist.py). Its config lives under ``[[services.blocklists]]`` with
``type = "dnsbl"``, apart from the per-second ``[[services.probes]]``: it never enters
the launcher, the detector or the availability verdicts.

How an answer is read (`read_answer`, the one definition):

* NXDOMAIN, or NOERROR without an A record: **clean** (not listed);
* an A record in 127.0.0.0/8 outside the zone's error codes: **listed**, with the codes
  and, when the zone has one, the TXT record as the reason;
* anything else is an **error** of the check, never a listing: SERVFAIL, REFUSED, any
  other rcode, no answer by the timeout, an address outside 127.0.0.0/8 (a resolver that
  rewrites NXDOMAIN), every code of 127.255.255.0/24 (Spamhaus: 127.255.255.252 typo in the
  zone name, .254 a public/open resolver asked, .255 excessive queries; the range is kept
  for errors by every list), and a zone's own error codes (URIBL and SURBL answer
  127.0.0.1 when they refuse a query).

The Spamhaus Data Query Service key (`dqs_key`, a secret) is part of the query name
(``<reversed-ip>.<key>.zen.dq.spamhaus.net``): queries are built here and nowhere else,
and every result names the zone by its public name (``zen.spamhaus.org``), so the key
never reaches a log, a metric, the store or an incident.

DNS goes through dnspython's asyncio query functions (UDP, TCP when truncated), to the
configured recursive resolver only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.schema import ConfigModel, secret

#: what Spamhaus answers for a query it will not answer (https://www.spamhaus.org/faq/)
SPAMHAUS_ERRORS = {
    "127.255.255.252": "typo_in_zone",
    "127.255.255.254": "public_resolver",
    "127.255.255.255": "excessive_queries",
}
#: the DBL also answers 127.0.1.255 to an IP address asked as a domain (Spamhaus zones doc)
DBL_ERRORS = {**SPAMHAUS_ERRORS, "127.0.1.255": "ip_query_not_allowed"}
#: URIBL and SURBL answer 127.0.0.1 for a query they refuse (a public resolver, volume)
REFUSED_127_0_0_1 = {"127.0.0.1": "query_refused"}
#: codes every list keeps for errors (Spamhaus documents the range)
ERROR_NET = ipaddress.ip_network("127.255.255.0/24")
LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True, slots=True)
class ZoneRule:
    """What availmon knows of a list: what it lists, its own error codes, and its Spamhaus
    DQS name (``zen`` → ``<key>.zen.dq.spamhaus.net``) when it has one."""

    kind: Literal["ip", "domain"]
    errors: dict[str, str] = field(default_factory=dict)
    dqs: str | None = None


KNOWN_ZONES: dict[str, ZoneRule] = {
    "zen.spamhaus.org": ZoneRule("ip", SPAMHAUS_ERRORS, "zen"),
    "sbl.spamhaus.org": ZoneRule("ip", SPAMHAUS_ERRORS, "sbl"),
    "xbl.spamhaus.org": ZoneRule("ip", SPAMHAUS_ERRORS, "xbl"),
    "pbl.spamhaus.org": ZoneRule("ip", SPAMHAUS_ERRORS, "pbl"),
    "sbl-xbl.spamhaus.org": ZoneRule("ip", SPAMHAUS_ERRORS, "sbl-xbl"),
    "dbl.spamhaus.org": ZoneRule("domain", DBL_ERRORS, "dbl"),
    "zrd.spamhaus.org": ZoneRule("domain", SPAMHAUS_ERRORS, "zrd"),
    "b.barracudacentral.org": ZoneRule("ip"),
    "bl.spamcop.net": ZoneRule("ip"),
    "dnsbl-1.uceprotect.net": ZoneRule("ip"),
    "multi.surbl.org": ZoneRule("domain", REFUSED_127_0_0_1),
    "multi.uribl.com": ZoneRule("domain", REFUSED_127_0_0_1),
}
DEFAULT_IP_ZONES = (
    "zen.spamhaus.org",
    "b.barracudacentral.org",
    "bl.spamcop.net",
    "dnsbl-1.uceprotect.net",
)
DEFAULT_DOMAIN_ZONES = ("dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com")

_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})+\.?$")


def _domain(value: str) -> str:
    value = value.strip().lower().rstrip(".")
    if not _HOSTNAME.match(value) or len(value) > 253:
        raise ValueError(f"{value!r} is not a domain name")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value
    raise ValueError(f"{value!r} is an IP address: it goes in ips, not domains")


def _resolver(value: str) -> str:
    """``IP`` or ``IP:PORT`` / ``[IPv6]:PORT``: a recursive resolver by address (a name
    would need a resolver to find the resolver)."""
    host, port = _split_resolver(value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{value!r}: give the resolver's IP address (and :port), not a host name"
        ) from None
    if not 0 < port < 65536:
        raise ValueError(f"{value!r}: port {port} is out of range 1-65535")
    return value


def _split_resolver(value: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", value)
    if m:
        return m.group(1), int(m.group(2) or 53)
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        if not port.isdigit():
            raise ValueError(f"{value!r}: the port must be a number")
        return host, int(port)
    return value, 53


def _zone_list(names: tuple[str, ...]) -> list[str | ZoneConfig]:
    return list(names)


class ZoneConfig(ConfigModel):
    """A zone written as a table, for a list availmon does not know (or to change what
    it knows): which answers are errors of the check rather than listings."""

    zone: str
    #: A records that mean the list refused the query (never a listing)
    error_codes: list[str] = Field(default_factory=list)

    _zone = field_validator("zone")(classmethod(lambda cls, v: _domain(v)))

    @field_validator("error_codes")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        for code in v:
            try:
                ip = ipaddress.IPv4Address(code)
            except ValueError:
                raise ValueError(f"{code!r} is not an IPv4 address") from None
            if ip not in LOOPBACK_NET:
                raise ValueError(f"{code!r} is not in 127.0.0.0/8, where lists answer")
        return v


class DnsblConfig(ConfigModel):
    """``[[services.blocklists]]``: the service's sending IPs and domains on blocklists."""

    type: Literal["dnsbl"]
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    enabled: bool = True
    #: the dedicated sending IPs, IPv4 and IPv6
    ips: list[str] = Field(default_factory=list)
    #: sending, bounce/return-path and tracking domains
    domains: list[str] = Field(default_factory=list)
    ip_zones: list[str | ZoneConfig] = Field(default_factory=lambda: _zone_list(DEFAULT_IP_ZONES))
    domain_zones: list[str | ZoneConfig] = Field(
        default_factory=lambda: _zone_list(DEFAULT_DOMAIN_ZONES)
    )
    #: the Spamhaus Data Query Service key: Spamhaus zones are asked as
    #: ``<key>.zen.dq.spamhaus.net`` / ``<key>.dbl.dq.spamhaus.net`` (a secret)
    dqs_key: SecretStr | None = None
    #: the recursive resolver to ask (IP[:port]): your own, never a public one
    resolver: str
    interval_seconds: float = Field(default=300, ge=1, le=86400)
    #: one query's deadline
    timeout_seconds: float = Field(default=5, gt=0, le=60)
    #: a zone whose every query errored on this many checks in a row is a blind condition
    blind_after_checks: int = Field(default=3, ge=1, le=1000)

    _sec = field_validator("dqs_key", mode="before")(classmethod(lambda cls, v: secret(v)))
    _res = field_validator("resolver")(classmethod(lambda cls, v: _resolver(v)))

    @field_validator("ips")
    @classmethod
    def _ips(cls, v: list[str]) -> list[str]:
        out = []
        for ip in v:
            try:
                out.append(str(ipaddress.ip_address(ip.strip())))
            except ValueError:
                raise ValueError(f"{ip!r} is not an IPv4 or IPv6 address") from None
        return out

    @field_validator("domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        return [_domain(d) for d in v]

    @field_validator("ip_zones", "domain_zones")
    @classmethod
    def _zones(cls, v: list[str | ZoneConfig]) -> list[str | ZoneConfig]:
        return [_domain(z) if isinstance(z, str) else z for z in v]

    @model_validator(mode="after")
    def _something(self) -> DnsblConfig:
        if not self.ips and not self.domains:
            raise ValueError("a dnsbl check needs at least one of ips or domains")
        if self.ips and not self.ip_zones:
            raise ValueError("ips are given but ip_zones is empty")
        if self.domains and not self.domain_zones:
            raise ValueError("domains are given but domain_zones is empty")
        return self

    def pairs(self) -> list[tuple[str, str]]:
        """Every (target, zone name) this check asks about."""
        return [
            (target, zone.name)
            for zone in self.zones()
            for target in (self.ips if zone.kind == "ip" else self.domains)
        ]

    def zones(self) -> list[Zone]:
        """Every zone to ask, with the rule that reads its answers."""
        out: list[Zone] = []
        kinds: tuple[tuple[Literal["ip", "domain"], list[str | ZoneConfig]], ...] = (
            ("ip", self.ip_zones),
            ("domain", self.domain_zones),
        )
        for kind, entries in kinds:
            if not (self.ips if kind == "ip" else self.domains):
                continue
            for entry in entries:
                name = entry if isinstance(entry, str) else entry.zone
                known = KNOWN_ZONES.get(name)
                errors = dict(known.errors) if known is not None else {}
                if isinstance(entry, ZoneConfig):
                    errors.update({c: "zone_error_code" for c in entry.error_codes})
                out.append(Zone(name, kind, errors, known.dqs if known is not None else None))
        return out


@dataclass(frozen=True, slots=True)
class Zone:
    name: str  # the public name: what results, logs and metrics say
    kind: Literal["ip", "domain"]
    errors: dict[str, str]
    dqs: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """One (target, zone) query's result. `result` is ``listed``, ``clean`` or ``error``;
    `codes` the A records (listed: the return codes), `txt` the reason a list gives,
    `error` why the check could not tell (``servfail``, ``refused``, ``timeout``,
    ``public_resolver``, ...)."""

    target: str
    zone: str
    result: Literal["listed", "clean", "error"]
    codes: tuple[str, ...] = ()
    txt: str | None = None
    error: str | None = None


def query_name(target: str, zone: Zone, dqs_key: str | None) -> str:
    """The name to ask: reversed octets (IPv4) or nibbles (IPv6), or the domain itself,
    under the zone (its DQS form when a key is given and the zone has one)."""
    suffix = f"{dqs_key}.{zone.dqs}.dq.spamhaus.net" if dqs_key and zone.dqs else zone.name
    if zone.kind == "ip":
        ip = ipaddress.ip_address(target)
        if ip.version == 4:
            head = ".".join(reversed(target.split(".")))
        else:
            head = ".".join(reversed(ip.exploded.replace(":", "")))
        return f"{head}.{suffix}"
    return f"{target}.{suffix}"


def read_answer(target: str, zone: Zone, rcode: int, addresses: list[str]) -> Answer:
    """The one reading of a list's answer (module docstring)."""
    if rcode == dns.rcode.NXDOMAIN:
        return Answer(target, zone.name, "clean")
    if rcode != dns.rcode.NOERROR:
        return Answer(
            target, zone.name, "error", error=dns.rcode.to_text(dns.rcode.Rcode(rcode)).lower()
        )
    if not addresses:
        return Answer(target, zone.name, "clean")
    codes = tuple(sorted(set(addresses), key=ipaddress.IPv4Address))
    for code in codes:
        ip = ipaddress.IPv4Address(code)
        if code in zone.errors:
            return Answer(target, zone.name, "error", codes, error=zone.errors[code])
        if ip in ERROR_NET:
            return Answer(target, zone.name, "error", codes, error="error_code")
        if ip not in LOOPBACK_NET:
            return Answer(target, zone.name, "error", codes, error="not_a_list_answer")
    return Answer(target, zone.name, "listed", codes)


class DnsblChecker:
    """Asks the resolver about every (target, zone) of one `DnsblConfig`."""

    def __init__(self, config: DnsblConfig) -> None:
        self.config = config
        self.host, self.port = _split_resolver(config.resolver)
        self.zone_list = config.zones()
        self._key = config.dqs_key  # resolved when a check is made (a SecretRef)

    def pairs(self) -> list[tuple[str, Zone]]:
        cfg = self.config
        return [
            (target, zone)
            for zone in self.zone_list
            for target in (cfg.ips if zone.kind == "ip" else cfg.domains)
        ]

    async def check(self) -> list[Answer]:
        """One check: every pair, concurrently, each bounded by `timeout_seconds`."""
        try:
            # resolved (and cached) by the start-up and reload checks, off the loop
            key = self._key.get_secret_value() if self._key is not None else None
        except ValueError:  # the reference cannot be resolved: no query can be made
            return [
                Answer(t, z.name, "error", error="dqs_key_unavailable") for t, z in self.pairs()
            ]
        return list(await asyncio.gather(*(self.ask(t, z, key) for t, z in self.pairs())))

    async def ask(self, target: str, zone: Zone, key: str | None) -> Answer:
        name = query_name(target, zone, key)
        try:
            reply = await self._query(name, dns.rdatatype.A)
        except (dns.exception.Timeout, TimeoutError):
            return Answer(target, zone.name, "error", error="timeout")
        except (OSError, dns.exception.DNSException) as exc:
            return Answer(target, zone.name, "error", error=_why(exc))
        addresses = [
            rr.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset
        ]
        answer = read_answer(target, zone, reply.rcode(), addresses)
        if answer.result != "listed":
            return answer
        return Answer(target, zone.name, "listed", answer.codes, await self._txt(name))

    async def _txt(self, name: str) -> str | None:
        """The list's reason (TXT), or None when it has none or does not say in time."""
        try:
            reply = await self._query(name, dns.rdatatype.TXT)
        except (OSError, TimeoutError, dns.exception.DNSException):
            return None
        texts = [
            b"".join(rr.strings).decode("utf-8", "replace")
            for rrset in reply.answer
            if rrset.rdtype == dns.rdatatype.TXT
            for rr in rrset
        ]
        return "; ".join(texts)[:500] if texts else None

    async def _query(self, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype)
        timeout = self.config.timeout_seconds
        async with asyncio.timeout(timeout):
            reply, _tcp = await dns.asyncquery.udp_with_fallback(
                q, self.host, timeout=timeout, port=self.port
            )
        return reply


def _why(exc: BaseException) -> str:
    """A short error name (never the query name: it may hold the DQS key)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        import errno

        return errno.errorcode.get(exc.errno, "os_error").lower()
    return type(exc).__name__.lower()
