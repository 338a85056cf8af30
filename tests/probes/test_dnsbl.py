"""The DNSBL checker against a real DNS server on loopback (monitor/simulator/dnsbl.py):
how each answer is read, IPv6 nibbles, the DQS key kept out of every result."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from monitor.simulator.dnsbl import DnsblServer
from probes.dnsbl import DnsblChecker, DnsblConfig, query_name


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsblServer]:
    async with DnsblServer() as server:
        yield server


def checker(server: DnsblServer, **fields: object) -> DnsblChecker:
    base: dict[str, object] = {
        "type": "dnsbl",
        "name": "lists",
        "ips": ["192.0.2.10"],
        "ip_zones": ["zen.spamhaus.org"],
        "resolver": f"127.0.0.1:{server.port}",
        "timeout_seconds": 0.5,
    }
    base.update(fields)
    return DnsblChecker(DnsblConfig.model_validate(base))


async def one(
    server: DnsblServer, **fields: object
) -> tuple[str, tuple[str, ...], str | None, str | None]:
    [a] = await checker(server, **fields).check()
    return a.result, a.codes, a.txt, a.error


async def test_clean_listed_with_reason_and_delisted(dns_server: DnsblServer) -> None:
    assert await one(dns_server) == ("clean", (), None, None)
    assert dns_server.asked[-1] == "10.2.0.192.zen.spamhaus.org"
    dns_server.list("192.0.2.10", "zen.spamhaus.org", ["127.0.0.2", "127.0.0.4"], "see https://x")
    assert await one(dns_server) == ("listed", ("127.0.0.2", "127.0.0.4"), "see https://x", None)
    dns_server.delist("192.0.2.10", "zen.spamhaus.org")
    assert (await one(dns_server))[0] == "clean"


async def test_a_listing_without_txt_has_no_reason(dns_server: DnsblServer) -> None:
    dns_server.list("192.0.2.10", "zen.spamhaus.org", ["127.0.0.3"])
    assert await one(dns_server) == ("listed", ("127.0.0.3",), None, None)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("127.255.255.252", "typo_in_zone"),
        ("127.255.255.254", "public_resolver"),
        ("127.255.255.255", "excessive_queries"),
        ("127.255.255.1", "error_code"),
        ("203.0.113.7", "not_a_list_answer"),
    ],
)
async def test_error_codes_are_errors_never_listings(
    dns_server: DnsblServer, code: str, error: str
) -> None:
    dns_server.set_fault("*", "code", code)
    assert await one(dns_server) == ("error", (code,), None, error)


@pytest.mark.parametrize("fault", ["servfail", "refused"])
async def test_servfail_and_refused_are_errors(dns_server: DnsblServer, fault: str) -> None:
    dns_server.list("192.0.2.10", "zen.spamhaus.org")
    dns_server.set_fault("zen.spamhaus.org", fault)
    assert await one(dns_server) == ("error", (), None, fault)


async def test_a_hang_is_a_timeout(dns_server: DnsblServer) -> None:
    dns_server.set_fault("*", "hang")
    assert await one(dns_server) == ("error", (), None, "timeout")


async def test_uribl_refusal_is_an_error_and_its_bits_a_listing(dns_server: DnsblServer) -> None:
    fields: dict[str, object] = {"ips": [], "domains": ["mail.example.com"]}
    fields["domain_zones"] = ["multi.uribl.com"]
    dns_server.list("mail.example.com", "multi.uribl.com", ["127.0.0.1"])
    assert await one(dns_server, **fields) == ("error", ("127.0.0.1",), None, "query_refused")
    dns_server.list("mail.example.com", "multi.uribl.com", ["127.0.0.4"], "black")
    assert await one(dns_server, **fields) == ("listed", ("127.0.0.4",), "black", None)
    assert dns_server.asked[-1] == "mail.example.com.multi.uribl.com"


async def test_a_zone_table_adds_error_codes(dns_server: DnsblServer) -> None:
    zone = {"zone": "bl.example.net", "error_codes": ["127.0.0.9"]}
    dns_server.list("192.0.2.10", "bl.example.net", ["127.0.0.9"])
    assert (await one(dns_server, ip_zones=[zone]))[3] == "zone_error_code"


async def test_ipv6_is_asked_by_reversed_nibbles(dns_server: DnsblServer) -> None:
    dns_server.list("2001:db8::1", "zen.spamhaus.org", ["127.0.0.2"])
    assert (await one(dns_server, ips=["2001:db8::1"]))[0] == "listed"
    want = ".".join(reversed("20010db8000000000000000000000001")) + ".zen.spamhaus.org"
    assert dns_server.asked[-1] == want


async def test_the_dqs_key_is_asked_but_never_in_a_result(
    dns_server: DnsblServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DQS_TEST_KEY", "abcdefghijklmnopqrstuvwxyz")
    dns_server.list(
        "192.0.2.10", "zen.spamhaus.org", ["127.0.0.2"], "listed", "abcdefghijklmnopqrstuvwxyz"
    )
    c = checker(
        dns_server,
        dqs_key="env:DQS_TEST_KEY",
        domains=["example.com"],
        domain_zones=["dbl.spamhaus.org"],
    )
    answers = await c.check()
    assert dns_server.asked[0] == "10.2.0.192.abcdefghijklmnopqrstuvwxyz.zen.dq.spamhaus.net"
    assert "example.com.abcdefghijklmnopqrstuvwxyz.dbl.dq.spamhaus.net" in dns_server.asked
    assert [(a.zone, a.result) for a in answers] == [
        ("zen.spamhaus.org", "listed"),
        ("dbl.spamhaus.org", "clean"),
    ]
    assert "abcdefghij" not in repr(answers) and "abcdefghij" not in repr(c.config)


def test_query_names() -> None:
    cfg = DnsblConfig.model_validate(
        {"type": "dnsbl", "name": "x", "ips": ["192.0.2.1"], "resolver": "127.0.0.1"}
    )
    zen = cfg.zones()[0]
    assert query_name("192.0.2.1", zen, None) == "1.2.0.192.zen.spamhaus.org"
    assert query_name("192.0.2.1", zen, "KEY") == "1.2.0.192.KEY.zen.dq.spamhaus.net"
    assert [z.name for z in cfg.zones()] == [
        "zen.spamhaus.org",
        "b.barracudacentral.org",
        "bl.spamcop.net",
        "dnsbl-1.uceprotect.net",
    ]


async def test_a_long_reason_comes_by_tcp(dns_server: DnsblServer) -> None:
    reason = "listed because " + "x" * 700
    dns_server.list("192.0.2.10", "zen.spamhaus.org", ["127.0.0.2"], reason)
    assert await one(dns_server) == ("listed", ("127.0.0.2",), reason[:500], None)
    assert dns_server.tcp_queries == 1  # the TXT answer was truncated over UDP


async def test_the_dbl_refusing_an_ip_query_is_an_error_and_an_ip_is_no_domain(
    dns_server: DnsblServer,
) -> None:
    fields: dict[str, object] = {"ips": [], "domains": ["mail.example.com"]}
    fields["domain_zones"] = ["dbl.spamhaus.org"]
    dns_server.list("mail.example.com", "dbl.spamhaus.org", ["127.0.1.255"])
    assert await one(dns_server, **fields) == (
        "error", ("127.0.1.255",), None, "ip_query_not_allowed",
    )  # fmt: skip
    dns_server.list("mail.example.com", "dbl.spamhaus.org", ["127.0.1.2"], "spam domain")
    assert (await one(dns_server, **fields))[0] == "listed"
    with pytest.raises(ValueError, match="is an IP address: it goes in ips"):
        checker(dns_server, ips=[], domains=["192.0.2.1"])
