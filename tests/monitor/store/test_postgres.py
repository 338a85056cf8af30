"""What only the PostgreSQL backend has: its connection (passwords, errors that name the
server and never the secret), its numbered migrations run once by concurrent starts, and
a refusal of a schema newer than this availmon. (Its behaviour as a store is the contract
suite's, test_contract.py, and the shared statements', test_sql_*.py.) A real server:
tests/pgserver.py."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from monitor.config import parse
from monitor.schema import ConfigError
from monitor.store import StoreError, open_store
from monitor.store.postgres import _migrations
from monitor.verdicts import SecondVerdict, Verdict
from tests import pgserver

pytestmark = pytest.mark.external

T0 = 1_767_225_600
SERVICES = [{"name": "sp", "probes": [{"type": "http", "name": "p", "url": "http://x/"}]}]


def _schema(url: str) -> str:
    return url.rsplit("%3D", 1)[1]


def test_a_newer_schema_is_refused_with_one_line() -> None:
    url = pgserver.fresh_url()
    open_store(url).close()
    pgserver.shared().sql(f"INSERT INTO {_schema(url)}.availmon_schema (version) VALUES (999)")
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "schema version 999, newer than this availmon knows" in message
    assert "\n" not in message


def test_concurrent_starts_migrate_once() -> None:
    url = pgserver.fresh_url()
    errors: list[BaseException] = []
    stores: list[Any] = []

    def start() -> None:
        try:
            stores.append(open_store(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(stores) == 4
    with psycopg.connect(pgserver.shared().url()) as conn:
        versions = [
            r[0]
            for r in conn.execute(
                f"SELECT version FROM {_schema(url)}.availmon_schema ORDER BY version"
            ).fetchall()
        ]
    assert versions == [n for n, _, _ in _migrations()]
    for s in stores:
        s.close()


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://someone:hunter2@127.0.0.1:1/nothing?connect_timeout=2")
    message = str(caught.value)
    assert message.startswith("store: cannot connect to postgresql://someone:***@127.0.0.1:1/")
    assert "hunter2" not in message and "\n" not in message


def test_the_password_comes_from_store_password(tmp_path: Any) -> None:
    cluster = pgserver.shared()
    url = cluster.url(user=pgserver.PASSWORD_USER, options="-csearch_path%3Dpw_test")
    cluster.sql(f"CREATE SCHEMA IF NOT EXISTS pw_test AUTHORIZATION {pgserver.PASSWORD_USER}")
    (tmp_path / "pgpass").write_text(pgserver.PASSWORD + "\n")
    settings = parse(
        {"store": {"url": url, "password": f"file:{tmp_path / 'pgpass'}"}, "services": SERVICES}
    )
    store = open_store(settings.store.url, settings.store.password_value())
    try:
        store.write_verdicts([SecondVerdict("sp", "api", T0, Verdict.AVAILABLE, "v1")])
        assert store.last_second("sp", "api", "v1") == T0
    finally:
        store.close()
    with pytest.raises(StoreError) as caught:
        open_store(url, "wrong-password")
    assert "password authentication failed" in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    missing = parse(
        {
            "store": {"url": url, "password": "env:AVAILMON_NO_SUCH_PG_PASSWORD"},
            "services": SERVICES,
        }
    )
    with pytest.raises(ConfigError) as unset:
        missing.store.password_value()
    assert "AVAILMON_NO_SUCH_PG_PASSWORD" in str(unset.value)


def test_instances_racing_for_the_lease_get_one_holder_and_disjoint_claims() -> None:
    """Two instances (a pool each, as two hosts) at once: one leader per round, and every
    outbox row claimed by exactly one of them."""
    from alerting.model import Incident, IncidentState, OutboxItem, Severity

    url = pgserver.fresh_url()
    a, b = open_store(url), open_store(url)
    try:
        incident = a.create_incident(
            Incident(0, "sp", Severity.CRITICAL, IncidentState.OPEN, "unavailable", "", T0)
        )
        a.enqueue(
            [
                OutboxItem(0, incident.id, f"n{i}", "trigger", {"seq": 1}, float(T0), float(T0))
                for i in range(40)
            ]
        )

        def race(store: Any, who: str, at: float, barrier: Any, won: list[Any]) -> None:
            barrier.wait()
            got = store.acquire_lease("leader", who, 30, now=at)
            if got is not None and got.holder == who:
                won.append(got)

        for round_ in range(5):
            won: list[Any] = []
            barrier = threading.Barrier(8)
            threads = [
                threading.Thread(
                    target=race,
                    args=(a if i % 2 else b, f"h{round_}.{i}", T0 + 100 * round_, barrier, won),
                )
                for i in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            assert len(won) == 1, won
            assert won[0].epoch == round_ + 1
        claims: dict[str, list[int]] = {"a": [], "b": []}
        barrier = threading.Barrier(2)

        def claim(store: Any, who: str) -> None:
            barrier.wait()
            claims[who] += [i.id for i in store.claim_due(float(T0 + 1), who, 60, limit=40)]

        pair = [threading.Thread(target=claim, args=(s, w)) for s, w in ((a, "a"), (b, "b"))]
        for t in pair:
            t.start()
        for t in pair:
            t.join(timeout=30)
        assert not set(claims["a"]) & set(claims["b"])
        assert len(set(claims["a"]) | set(claims["b"])) == 40
    finally:
        a.close()
        b.close()
