"""The report's `blocklist` section: every listing spell that overlapped the month,
clipped to it, in JSON, CSV, Markdown and HTML."""

from __future__ import annotations

import json

from monitor.reports.compute import build_report
from monitor.reports.render import render
from monitor.store.base import BlocklistSpell, Store
from probes.base import Outcome
from tests.monitor.reports.conftest import Feeder, Pattern, T, settings_for

AFTER = T("2026-06-15T00:00:00Z")
IP, ZEN, DBL = "192.0.2.10", "zen.spamhaus.org", "dbl.spamhaus.org"


def test_every_listing_spell_of_the_month_with_its_start_and_end(store: Store) -> None:
    settings = settings_for()
    Feeder(settings, store).run(T("2026-05-01T00:00:00Z"), T("2026-05-01T01:00:00Z"), Pattern())
    spells = [
        # from April into May: clipped to the month's start
        BlocklistSpell("mail", IP, ZEN, T("2026-04-30T20:00:00Z"), T("2026-05-02T08:00:00Z"),
                       ("127.0.0.2",), "https://check.spamhaus.org/"),
        # within May, and one still listed
        BlocklistSpell("mail", "mail.example.com", DBL, T("2026-05-10T10:00:00Z"),
                       T("2026-05-10T12:30:00Z"), ("127.0.1.2",), None),
        BlocklistSpell("mail", IP, "bl.spamcop.net", T("2026-05-20T00:00:00Z"), None,
                       ("127.0.0.2",), "Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.10"),
        # outside May, and another service's: not in the report
        BlocklistSpell("mail", IP, ZEN, T("2026-04-01T00:00:00Z"), T("2026-04-02T00:00:00Z")),
        BlocklistSpell("other", IP, ZEN, T("2026-05-05T00:00:00Z"), None),
    ]  # fmt: skip
    for spell in spells:
        store.open_spell(spell)
        if spell.ended_at is not None:
            store.close_spell(spell.service, spell.target, spell.zone, spell.ended_at)
    r = build_report(store, settings, "mail", "2026-05", now=AFTER)
    got = [(b["zone"], b["target"], b["start"], b["end"], b["ongoing"]) for b in r["blocklist"]]
    assert got == [
        (ZEN, IP, "2026-05-01T00:00:00+00:00", "2026-05-02T08:00:00+00:00", False),
        (DBL, "mail.example.com", "2026-05-10T10:00:00+00:00", "2026-05-10T12:30:00+00:00", False),
        ("bl.spamcop.net", IP, "2026-05-20T00:00:00+00:00", None, True),
    ]
    assert (r["blocklist"][0]["code"], r["blocklist"][0]["txt"]) == (
        "127.0.0.2",
        "https://check.spamhaus.org/",
    )
    assert json.loads(render([r], "json"))["blocklist"] == r["blocklist"]
    md = render([r], "md")
    assert "# Blocklist listings (3)" in md and "mail.example.com" in md
    html = render([r], "html")
    assert "<h2>Blocklist listings (3)</h2>" in html
    assert "<td>bl.spamcop.net</td>" in html and "<td>ongoing</td>" in html
    assert "https://www.spamcop.net/bl.shtml?192.0.2.10" in html
    csv_text = render([r], "csv")
    assert "mail,2026-05,blocklist,3,zone,bl.spamcop.net" in csv_text


def test_no_listing_no_section(store: Store) -> None:
    settings = settings_for()
    Feeder(settings, store).run(
        T("2026-05-01T00:00:00Z"),
        T("2026-05-01T00:10:00Z"),
        Pattern().add("api", T("2026-05-01T00:01:00Z"), T("2026-05-01T00:01:05Z"), Outcome.TIMEOUT),
    )
    r = build_report(store, settings, "mail", "2026-05", now=AFTER)
    assert r["blocklist"] == []
    assert "Blocklist listings" not in render([r], "html")
