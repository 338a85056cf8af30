"""What the blocklist checks of one service have seen, check after check.

The checker (probes/dnsbl.py) reads each answer; this module keeps, per service, the
state across checks and says what changed — the rules:

* a **listing** counts from the first check that sees it (a new spell, `opened`);
* a **delisting** needs two clean answers in a row for the pair (target, zone): one clean
  answer between two listed ones is not a delisting (lists answer from several servers);
  an error between two clean answers breaks the run (`closed` once confirmed);
* an **error** (SERVFAIL, REFUSED, a timeout, an error code) never changes what is known
  to be listed;
* a zone is **blind** once every one of its queries has errored on `blind_after_checks`
  checks in a row (3: 15 minutes at the default interval); the first check with any
  conclusive answer from it ends that.

It runs on the event loop and does no I/O; the daemon (the leader only) makes the checks
and hands the result to the incident policy (`Policy.on_blocklist`), which writes the
spells and opens, extends or resolves the Non-Critical Issue.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from monitor.store.base import BlocklistSpell
from probes.dnsbl import Answer, DnsblChecker, DnsblConfig

#: a delisting is confirmed after this many clean answers in a row
DELIST_AFTER = 2


def watched(configs: list[DnsblConfig]) -> set[tuple[str, str]]:
    """The (target, zone) pairs the enabled checks ask about."""
    return {pair for c in configs if c.enabled for pair in c.pairs()}


@dataclass(frozen=True, slots=True)
class Findings:
    """One check's outcome for a service, after the rules above."""

    service: str
    at: float
    #: every pair listed now (target, zone) → its spell (open)
    listed: dict[tuple[str, str], BlocklistSpell]
    #: spells that began with this check
    opened: list[BlocklistSpell]
    #: pairs whose delisting this check confirmed
    closed: list[tuple[str, str]]
    #: zones blind now → why, in one line
    blind: dict[str, str]
    #: (zone, result) → answers of this check (the metrics)
    results: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class _Pair:
    spell: BlocklistSpell | None = None
    clean: int = 0


def same_configs(a: list[DnsblConfig], b: list[DnsblConfig]) -> bool:
    """Whether a reload left these checks as they were. The DQS key compares by value:
    both were resolved already (at the check, and by the reload's secret check); one that
    cannot be resolved counts as a change."""
    try:
        return a == b
    except ValueError:
        return False


class BlocklistWatch:
    """The checks of one service (its ``[[services.blocklists]]`` entries)."""

    def __init__(
        self, service: str, configs: list[DnsblConfig], open_spells: list[BlocklistSpell]
    ) -> None:
        self.service = service
        self.configs = [c for c in configs if c.enabled]
        self._pairs: dict[tuple[str, str], _Pair] = {}
        asked = watched(self.configs)
        for spell in open_spells:
            if spell.service == service and (spell.target, spell.zone) in asked:
                self._pairs[(spell.target, spell.zone)] = _Pair(spell)
        #: zone → checks in a row on which every query of it errored, and their errors
        self._erring: dict[str, int] = {}
        self._errors: dict[str, Counter[str]] = {}
        self.blind_after = min((c.blind_after_checks for c in self.configs), default=3)

    def listed(self) -> dict[tuple[str, str], BlocklistSpell]:
        return {k: p.spell for k, p in self._pairs.items() if p.spell is not None}

    def absorb(self, answers: list[Answer], at: float) -> Findings:
        opened: list[BlocklistSpell] = []
        closed: list[tuple[str, str]] = []
        results: Counter[tuple[str, str]] = Counter()
        conclusive: dict[str, bool] = {}
        errors: dict[str, Counter[str]] = {}
        for a in answers:
            results[(a.zone, a.result)] += 1
            conclusive[a.zone] = conclusive.get(a.zone, False) or a.result != "error"
            pair = self._pairs.setdefault((a.target, a.zone), _Pair())
            if a.result == "error":
                errors.setdefault(a.zone, Counter())[a.error or "error"] += 1
                pair.clean = 0
            elif a.result == "listed":
                pair.clean = 0
                if pair.spell is None:
                    pair.spell = BlocklistSpell(
                        self.service, a.target, a.zone, at, None, a.codes, a.txt
                    )
                    opened.append(pair.spell)
            else:
                pair.clean += 1
                if pair.spell is not None and pair.clean >= DELIST_AFTER:
                    pair.spell = None
                    closed.append((a.target, a.zone))
        for zone, seen in conclusive.items():
            if seen:
                self._erring.pop(zone, None)
                self._errors.pop(zone, None)
            else:
                self._erring[zone] = self._erring.get(zone, 0) + 1
                self._errors[zone] = errors.get(zone, Counter())
        blind = {
            zone: (
                f"blocklist {zone} unreadable: every query errored on {n} checks in a row ("
                + ", ".join(f"{e} {k}" for e, k in self._errors[zone].most_common(3))
                + ")"
            )
            for zone, n in sorted(self._erring.items())
            if n >= self.blind_after
        }
        return Findings(self.service, at, self.listed(), opened, closed, blind, results)


class BlocklistRunner:
    """The leader's checks: one checker per enabled ``[[services.blocklists]]`` entry and
    one watch per service. `check` asks the resolver (asynchronous DNS, on the loop) and
    returns what the watch makes of the answers; the daemon schedules it every
    `interval_seconds` (monitor/daemon.py) and hands the findings to the policy."""

    def __init__(self, services: list[Any], open_spells: list[BlocklistSpell]) -> None:
        self.watches: dict[str, BlocklistWatch] = {}
        self.checkers: dict[tuple[str, str], DnsblChecker] = {}
        #: open spells of the store that no configured check asks about
        self.unwatched = self.reconfigure(services, open_spells)

    def reconfigure(
        self, services: list[Any], open_spells: list[BlocklistSpell]
    ) -> list[BlocklistSpell]:
        """A new config (`services`: its ServiceConfigs); a kept service's watch keeps
        what it knows is listed, a new one starts from `open_spells` (the store's).
        Returns the open spells no check asks about any more (they stay open in the
        store: nothing watches them; the daemon says so)."""
        before = [x for w in self.watches.values() for x in w.listed().values()]
        known = {(x.service, x.target, x.zone): x for x in [*open_spells, *before]}
        watches: dict[str, BlocklistWatch] = {}
        checkers: dict[tuple[str, str], DnsblChecker] = {}
        for svc in services:
            configs = [c for c in svc.blocklists if c.enabled]
            if not configs:
                continue
            old = self.watches.get(svc.name)
            if old is not None and same_configs(old.configs, configs):
                watches[svc.name] = old  # unchanged: its counts of clean and erring go on
                for cfg in configs:
                    checkers[(svc.name, cfg.name)] = self.checkers.get(
                        (svc.name, cfg.name)
                    ) or DnsblChecker(cfg)
                continue
            # what it knew, and what the store has open for a pair it did not ask about
            # (a check the reload adds again): a later delisting then closes that spell
            seed = {(x.target, x.zone): x for x in open_spells if x.service == svc.name}
            if old is not None:
                seed.update(old.listed())
            watches[svc.name] = BlocklistWatch(svc.name, configs, list(seed.values()))
            for cfg in configs:
                checkers[(svc.name, cfg.name)] = DnsblChecker(cfg)
        self.watches, self.checkers = watches, checkers
        kept = {
            (x.service, x.target, x.zone) for w in watches.values() for x in w.listed().values()
        }
        return [x for k, x in sorted(known.items()) if k not in kept]

    def jobs(self) -> list[tuple[str, str, float]]:
        """(service, check name, interval seconds) of every check to schedule."""
        return [(s, n, c.config.interval_seconds) for (s, n), c in self.checkers.items()]

    def pairs(self, service: str, name: str) -> list[tuple[str, str]]:
        checker = self.checkers.get((service, name))
        return [] if checker is None else [(t, z.name) for t, z in checker.pairs()]

    async def check(self, service: str, name: str, at: float) -> Findings | None:
        checker = self.checkers.get((service, name))
        watch = self.watches.get(service)
        if checker is None or watch is None:
            return None  # a reload removed it while the job was due
        answers = await checker.check()
        if self.watches.get(service) is not watch:
            return None  # a reload replaced the watch meanwhile: its spells are the store's
        return watch.absorb(answers, at)
