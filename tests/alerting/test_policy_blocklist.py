"""Blocklist checks in the incident policy: a listing opens (or extends) the service's
Non-Critical Issue, two clean checks in a row delist, errors never delist and, when they
last, are a `blocklist_blind` condition; spells are durable and survive a restart.
Check results are data (probes.dnsbl.Answer) through the real watch (monitor/blocklist.py),
on a real SQLite store; the DNS side is tested against a DNS server in
tests/probes/test_dnsbl.py and tests/monitor/test_daemon_blocklist.py."""

from __future__ import annotations

from pathlib import Path

from monitor.blocklist import BlocklistWatch
from monitor.config import Settings, parse
from probes.dnsbl import Answer
from tests.alerting.test_policy import MONDAY, Rig

IP, ZEN, BARRA = "192.0.2.10", "zen.spamhaus.org", "b.barracudacentral.org"


def settings() -> Settings:
    url = "http://127.0.0.1:9/hook"
    lists = {
        "type": "dnsbl",
        "name": "lists",
        "ips": [IP],
        "ip_zones": [ZEN, BARRA],
        "resolver": "127.0.0.1:53",
        "blind_after_checks": 2,
    }
    return parse(
        {
            "monitor": {"vantage": "test"},
            "services": [
                {
                    "name": "sp",
                    "probes": [{"type": "http", "name": "api", "url": url}],
                    "blocklists": [lists],
                }
            ],
            "notifiers": [{"type": "webhook", "name": "tickets", "url": url, "tiers": ["ticket"]}],
        }
    )


class Checks:
    """The watch of service "sp", fed one check at a time."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        svc = rig.settings.service("sp")
        self.watch = BlocklistWatch("sp", svc.blocklists, rig.store.spells("sp", open_only=True))

    def check(self, zen: str, barracuda: str = "clean", **kw: object) -> None:
        def answer(zone: str, result: str) -> Answer:
            if result == "listed":
                return Answer(IP, zone, "listed", ("127.0.0.2",), kw.get("txt"))  # type: ignore[arg-type]
            if result == "error":
                return Answer(IP, zone, "error", (), None, "servfail")
            return Answer(IP, zone, "clean")

        self.rig.feed("A" * 300)  # a check every 300 s
        findings = self.watch.absorb(
            [answer(ZEN, zen), answer(BARRA, barracuda)], self.rig.clock.wall()
        )
        self.rig.policy.on_blocklist(findings)


def test_a_listing_opens_a_non_critical_issue_and_two_clean_checks_resolve_it(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, settings(), start=MONDAY)
    checks = Checks(rig)
    checks.check("clean")
    assert rig.incidents() == []
    checks.check("listed", txt="https://check.spamhaus.org/")
    [inc] = rig.incidents()
    assert (inc.severity, inc.kind, inc.state) == ("non_critical", "blocklisted", "open")
    assert f"{IP} listed on {ZEN} (127.0.0.2: https://check.spamhaus.org/)" in inc.summary
    [listing] = inc.data["listings"]
    assert {k: listing[k] for k in ("zone", "target", "codes", "txt")} == {
        "zone": ZEN,
        "target": IP,
        "codes": ["127.0.0.2"],
        "txt": "https://check.spamhaus.org/",
    }
    listed_at = listing["since"]
    # a second zone lists it too: the same incident, one more condition
    checks.check("listed", "listed")
    assert [i.id for i in rig.incidents()] == [inc.id]
    assert rig.kinds(inc.id).count("condition_added") == 1
    # one clean answer is no delisting; an error between clean ones breaks the run
    checks.check("clean", "clean")
    checks.check("error", "clean")
    checks.check("clean", "clean")
    assert rig.store.get_incident(inc.id).state == "open"
    assert [s.zone for s in rig.store.spells("sp", open_only=True)] == [ZEN]
    checks.check("clean", "clean")
    done = rig.store.get_incident(inc.id)
    assert (done.state, done.resolved_by) == ("resolved", "availmon")
    spells = [(s.zone, s.started_at, s.ended_at) for s in rig.store.spells("sp")]
    assert spells[0] == (ZEN, listed_at, rig.clock.wall())
    assert spells[1][0] == BARRA and spells[1][2] is not None
    assert [o.event for o in rig.items("tickets")] == ["trigger", "update", "resolve"]


def test_errors_never_delist_and_lasting_errors_are_blind(tmp_path: Path) -> None:
    rig = Rig(tmp_path, settings(), start=MONDAY)
    checks = Checks(rig)
    checks.check("listed")
    [inc] = rig.incidents()
    checks.check("error", "error")
    checks.check("error", "error")  # blind_after_checks = 2
    inc = rig.store.get_incident(inc.id)
    assert inc.state == "open" and inc.data["kinds"] == ["blocklisted", "blocklist_blind"]
    assert f"blocklist {ZEN} unreadable: every query errored on 2 checks in a row" in (
        rig.store.events(inc.id)[-1].data.get("text", "") + inc.data["detail"]
    )
    assert [s.ended_at for s in rig.store.spells("sp")] == [None]


def test_blind_alone_opens_and_a_readable_check_ends_the_condition(tmp_path: Path) -> None:
    rig = Rig(tmp_path, settings(), start=MONDAY)
    checks = Checks(rig)
    checks.check("error")
    assert rig.incidents() == []  # one erring check is not blindness
    checks.check("error", "error")  # ZEN's second in a row, Barracuda's first
    [inc] = rig.incidents()
    assert (inc.kind, inc.data["kinds"]) == ("blocklist_blind", ["blocklist_blind"])
    assert ZEN in inc.summary and BARRA not in inc.summary
    checks.check("clean", "clean")
    assert rig.store.get_incident(inc.id).data.get("absent_since") is not None


def test_a_restart_keeps_the_listing_until_two_clean_checks(tmp_path: Path) -> None:
    rig = Rig(tmp_path, settings(), start=MONDAY)
    Checks(rig).check("listed")
    [inc] = rig.incidents()
    rig.policy = rig.new_policy()
    rig.policy.restore()
    checks = Checks(rig)  # the watch starts from the open spells
    rig.feed("A" * 600)
    assert rig.store.get_incident(inc.id).state == "open"
    checks.check("listed")  # seen again: no second spell, no second incident
    checks.check("clean")
    assert rig.store.get_incident(inc.id).state == "open"
    checks.check("clean")
    assert rig.store.get_incident(inc.id).state == "resolved"
    assert len(rig.store.spells("sp")) == 1 and len(rig.incidents()) == 1


def test_a_delisted_pair_listed_again_while_the_issue_is_open_is_news_again(
    tmp_path: Path,
) -> None:
    """Barracuda lists, delists (two clean checks) and lists again while Spamhaus keeps
    the issue open: each listing by Barracuda is a condition_added, and a spell each."""
    rig = Rig(tmp_path, settings(), start=MONDAY)
    checks = Checks(rig)
    checks.check("listed")
    [inc] = rig.incidents()
    checks.check("listed", "listed")
    assert rig.kinds(inc.id).count("condition_added") == 1
    checks.check("listed", "clean")
    checks.check("listed", "clean")  # delisted from Barracuda: its spell closed
    checks.check("listed", "listed")
    assert [i.id for i in rig.incidents()] == [inc.id]
    assert rig.kinds(inc.id).count("condition_added") == 2
    barracuda = [x for x in rig.store.spells("sp") if x.zone == BARRA]
    assert [x.ended_at is not None for x in barracuda] == [True, False]
