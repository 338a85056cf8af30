"""Tables of verdict runs, minute counts, evidence and maintenance windows (the SQL both
backends speak, monitor/store/sql.py).

Verdicts are stored run-length encoded: appending a second to a stream extends its open
run (one UPDATE) or starts a new one (one INSERT). The open run of each
(service, channel, vantage) is cached in memory, loaded lazily from the file, so that a
restarted daemon continues the run it left. This assumes one writer per stream (the
daemon of that vantage), which is how availmon runs.

Read side: `runs` returns each vantage's own runs; combining vantages is a business rule
and lives above the store (`monitor/quorum.py`, used through `monitor/seconds.py` and the
report), never in a backend.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from monitor.store.base import MaintenanceWindow, MinuteCount, NotFound, Run, StoreError
from monitor.store.sql import Db, SqlEngine
from monitor.verdicts import SecondVerdict, UnknownReason, Verdict
from probes.base import QUALIFYING, Attempt

_Stream = tuple[str, str, str]  # (service, channel, vantage)
_Source = tuple[str, str, str, str]  # (service, channel, probe, vantage)

_UNKNOWN = str(Verdict.UNKNOWN)


@dataclass(slots=True)
class _OpenRun:
    """The latest run of a stream, as the writer sees it."""

    id: int | None  # None until inserted
    verdict: str
    reason: str | None
    first: int
    last: int
    stored_last: int | None  # last_second as in the file (None: not inserted yet)


def _source(a: Attempt) -> _Source:
    return (a.service, a.channel, a.probe, a.vantage)


def _evidence_row(source: int, a: Attempt) -> tuple[Any, ...]:
    """An attempt as an evidence row (see the table's comment in 0002_seconds.sql). The
    launcher's own ids are not stored whole: ``probe:second:slot@vantage`` (what it sends
    since ids are unique per vantage) is kept as '' and the older ``probe:second:slot`` as
    NULL; `evidence` rebuilds both from the row's source."""
    own = f"{a.probe}:{a.second}:{a.slot}"
    attempt_id: str | None = a.attempt_id
    if attempt_id == own:
        attempt_id = None
    elif attempt_id == f"{own}@{a.vantage}":
        attempt_id = ""
    detail = json.dumps(a.detail, separators=(",", ":"), default=str) if a.detail else None
    started_us = round(a.started * 1e6) - a.second * 1_000_000
    return (
        *(source, a.second, a.slot, str(a.outcome), round(a.latency * 1e6), started_us),
        *(attempt_id, detail),
    )


def _vantage_filter(vantage: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (and its parameter) that keeps one vantage's attempts."""
    return ("", ()) if vantage is None else (" AND s.vantage = ?", (vantage,))


class SecondsMixin(SqlEngine):
    def __init__(self) -> None:
        # Both caches mirror committed rows only; they are dropped when a transaction fails.
        self._open_runs: dict[_Stream, _OpenRun | None] = {}
        self._sources: dict[_Source, int] = {}
        super().__init__()

    # ------------------------------------------------------------------ writing runs

    def write_verdicts(self, verdicts: Sequence[SecondVerdict]) -> None:
        """Append final verdicts; the whole batch is one transaction (see base.Store)."""
        if not verdicts:
            return
        self._append(
            (
                (v.service, v.channel, v.vantage),
                v.second,
                v.second,
                str(v.verdict),
                str(v.reason) if v.verdict is Verdict.UNKNOWN and v.reason else None,
            )
            for v in verdicts
        )

    def fill_unknown(
        self,
        service: str,
        channel: str,
        vantage: str,
        first: int,
        last: int,
        reason: UnknownReason,
    ) -> None:
        """Label seconds first..last (inclusive) unknown for `reason`, e.g. the gap a
        restart leaves (monitor_down). Seconds already stored are left alone: the run is
        clipped to start after the stream's last stored second."""
        if last < first:
            return
        self._append([((service, channel, vantage), first, last, _UNKNOWN, str(reason))])

    def _append(self, items: Iterable[tuple[_Stream, int, int, str, str | None]]) -> None:
        # The lock also covers the cache update after COMMIT, so that no other writer can
        # start from a cache older than the file.
        with self._lock:
            try:
                with self._tx() as db:
                    work = self._extend(db, items)
                    self._save(db, work)
            except BaseException:
                self._open_runs.clear()
                raise
            for stream, runs in work.items():
                if runs:
                    self._open_runs[stream] = runs[-1]

    def _extend(
        self, db: Db, items: Iterable[tuple[_Stream, int, int, str, str | None]]
    ) -> dict[_Stream, list[_OpenRun]]:
        """Merge the items into each stream's open run, in memory: the runs to save."""
        work: dict[_Stream, list[_OpenRun]] = {}
        for stream, first, last, verdict, reason in items:
            runs = work.get(stream)
            if runs is None:
                cached = self._open_run(db, stream)
                # a copy: the cache must not see changes that may yet roll back
                runs = work[stream] = [replace(cached)] if cached else []
            tail = runs[-1] if runs else None
            if tail is not None and first <= tail.last:
                first = tail.last + 1  # never labelled twice
                if first > last:
                    continue
            if (
                tail is not None
                and first == tail.last + 1
                and tail.verdict == verdict
                and tail.reason == reason
            ):
                tail.last = last
            else:
                runs.append(_OpenRun(None, verdict, reason, first, last, None))
        return work

    def _save(self, db: Db, work: dict[_Stream, list[_OpenRun]]) -> None:
        """One UPDATE per extended run (batched), one INSERT per new run."""
        updates: list[tuple[int, int]] = []
        for (service, channel, vantage), runs in work.items():
            for run in runs:
                if run.id is None:
                    cursor = db.execute(
                        "INSERT INTO runs (service, channel, vantage, verdict, reason,"
                        " first_second, last_second) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (
                            *(service, channel, vantage),
                            *(run.verdict, run.reason, run.first, run.last),
                        ),
                    )
                    run.id = int(cursor.fetchone()[0])
                elif run.last != run.stored_last:
                    updates.append((run.last, run.id))
                run.stored_last = run.last
        if updates:
            db.executemany("UPDATE runs SET last_second = ? WHERE id = ?", updates)

    def _open_run(self, db: Db, stream: _Stream) -> _OpenRun | None:
        if stream in self._open_runs:
            return self._open_runs[stream]
        row = db.execute(
            "SELECT id, verdict, reason, first_second, last_second FROM runs"
            " WHERE service = ? AND channel = ? AND vantage = ?"
            " ORDER BY last_second DESC LIMIT 1",
            stream,
        ).fetchone()
        run = _OpenRun(row[0], row[1], row[2], row[3], row[4], row[4]) if row is not None else None
        self._open_runs[stream] = run
        return run

    # ------------------------------------------------------------- counts and evidence

    def _source_id(self, db: Db, key: _Source) -> int:
        found = self._sources.get(key)
        if found is not None:
            return found
        db.execute(
            "INSERT INTO attempt_sources (service, channel, probe, vantage) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            key,
        )
        row = db.execute(
            "SELECT id FROM attempt_sources"
            " WHERE service = ? AND channel = ? AND probe = ? AND vantage = ?",
            key,
        ).fetchone()
        self._sources[key] = int(row[0])
        return int(row[0])

    def write_minute_counts(self, counts: Iterable[MinuteCount]) -> None:
        """Add counts; a (service, channel, probe, minute, outcome) already stored is
        incremented. `minute` must be the epoch second a minute starts at."""
        totals: Counter[tuple[_Source, int, str]] = Counter()
        for c in counts:
            if c.minute % 60:
                raise StoreError(
                    f"minute count {c.service}/{c.channel}/{c.probe}: minute {c.minute} is"
                    " not the start of a minute"
                )
            totals[((c.service, c.channel, c.probe, c.vantage), c.minute, c.outcome)] += c.count
        if not totals:
            return
        with self._sourced_tx() as db:
            db.executemany(
                "INSERT INTO minute_counts (source, minute, outcome, count)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (source, minute, outcome)"
                " DO UPDATE SET count = minute_counts.count + excluded.count",
                [
                    (self._source_id(db, source), minute, outcome, n)
                    for (source, minute, outcome), n in totals.items()
                ],
            )

    @contextmanager
    def _sourced_tx(self) -> Iterator[Db]:
        """A transaction that may add source ids; a rollback forgets the cached ids, and
        the lock keeps a rolled-back id from being seen by another writer."""
        with self._lock:
            try:
                with self._tx() as db:
                    yield db
            except BaseException:
                self._sources.clear()
                raise

    def write_evidence(self, attempts: Iterable[Attempt]) -> None:
        batch = list(attempts)
        if not batch:
            return
        with self._sourced_tx() as db:
            db.executemany(
                "INSERT INTO evidence (source, second, slot, outcome, latency_us,"
                " started_us, attempt_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [_evidence_row(self._source_id(db, _source(a)), a) for a in batch],
            )

    # ------------------------------------------------------------- recent verdicts

    def write_recent(self, verdicts: Sequence[SecondVerdict]) -> None:
        if not verdicts:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT INTO recent_verdicts (service, second, vantage, channel, verdict,"
                " reason, degraded, excluded, counts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        *(v.service, v.second, v.vantage, v.channel, str(v.verdict)),
                        str(v.reason) if v.reason is not None else None,
                        int(v.degraded),
                        int(v.excluded),
                        json.dumps(v.counts, separators=(",", ":")) if v.counts else None,
                    )
                    for v in verdicts
                ],
            )

    def recent(self, service: str, first: int, last: int) -> list[SecondVerdict]:
        rows = self._query(
            "SELECT service, channel, second, verdict, vantage, reason, degraded, excluded,"
            " counts FROM recent_verdicts WHERE service = ? AND second >= ? AND second <= ?"
            " ORDER BY second, vantage, channel",
            (service, first, last),
        )
        return [
            SecondVerdict(
                service=r[0],
                channel=r[1],
                second=int(r[2]),
                verdict=Verdict(r[3]),
                vantage=r[4],
                reason=UnknownReason(r[5]) if r[5] else None,
                degraded=bool(r[6]),
                excluded=bool(r[7]),
                counts=json.loads(r[8]) if r[8] else {},
            )
            for r in rows
        ]

    def recent_progress(self, service: str, since: int) -> dict[str, int]:
        rows = self._query(
            "SELECT vantage, MAX(second) FROM recent_verdicts WHERE service = ? AND second > ?"
            " GROUP BY vantage",
            (service, since),
        )
        return {r[0]: int(r[1]) for r in rows}

    def prune_recent(self, before: int) -> int:
        with self._tx() as db:
            return int(
                db.execute("DELETE FROM recent_verdicts WHERE second < ?", (before,)).rowcount
            )

    # ------------------------------------------------------------------ reading

    def last_second(self, service: str, channel: str, vantage: str | None = None) -> int | None:
        if vantage is None:
            rows = self._query(
                "SELECT MAX(last_second) FROM runs WHERE service = ? AND channel = ?",
                (service, channel),
            )
        else:
            rows = self._query(
                "SELECT MAX(last_second) FROM runs"
                " WHERE service = ? AND channel = ? AND vantage = ?",
                (service, channel, vantage),
            )
        value = rows[0][0]
        return int(value) if value is not None else None

    def bounds(self, service: str, vantage: str | None = None) -> tuple[int, int] | None:
        row = self._query(
            "SELECT MIN(first_second), MAX(last_second) FROM runs WHERE service = ?"
            + (" AND vantage = ?" if vantage is not None else ""),
            (service,) if vantage is None else (service, vantage),
        )[0]
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def streams(self) -> list[tuple[str, str, str]]:
        """Every (service, channel, vantage) with at least one stored second."""
        rows = self._query(
            "SELECT DISTINCT service, channel, vantage FROM runs ORDER BY service, channel, vantage"
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def _run_rows(
        self,
        service: str,
        channels: Sequence[str],
        start: int,
        end: int,
        vantage: str | None,
    ) -> list[Any]:
        marks = ", ".join("?" * len(channels))
        sql = (
            "SELECT channel, vantage, verdict, reason, first_second, last_second FROM runs"
            f" WHERE service = ? AND channel IN ({marks})"
            " AND first_second < ? AND last_second >= ?"
        )
        params: list[Any] = [service, *channels, end, start]
        if vantage is not None:
            sql += " AND vantage = ?"
            params.append(vantage)
        return self._query(sql + " ORDER BY first_second, vantage", tuple(params))

    def runs(
        self, service: str, channel: str, start: int, end: int, vantage: str | None = None
    ) -> list[Run]:
        """Runs overlapping [start, end) clipped to it, ordered by first second (all
        vantages' runs, interleaved, when no vantage is named)."""
        if end <= start:
            return []
        return [
            Run(
                service,
                channel,
                r["vantage"],
                Verdict(r["verdict"]),
                UnknownReason(r["reason"]) if r["reason"] else None,
                max(r["first_second"], start),
                min(r["last_second"], end - 1),
            )
            for r in self._run_rows(service, (channel,), start, end, vantage)
        ]

    def minute_counts(
        self, service: str, start: int, end: int, vantage: str | None = None
    ) -> list[MinuteCount]:
        """Counts of the minutes starting in [start, end), by minute, channel, probe (and
        vantage: every vantage's, or the one named)."""
        where, params = _vantage_filter(vantage)
        rows = self._query(
            "SELECT s.service, s.channel, s.probe, m.minute, m.outcome, m.count, s.vantage"
            " FROM minute_counts m JOIN attempt_sources s ON s.id = m.source"
            " WHERE s.service = ? AND m.minute >= ? AND m.minute < ?"
            + where
            + " ORDER BY m.minute, s.channel, s.probe, m.outcome, s.vantage",
            (service, start, end, *params),
        )
        return [MinuteCount(*tuple(r)) for r in rows]

    def attempt_totals(
        self, service: str, start: int, end: int, vantage: str | None = None
    ) -> dict[str, int]:
        """Attempts per channel in the minutes starting in [start, end) (of every vantage,
        or the one named): one aggregate query (the report's attempts-per-second figure),
        not ~90 k minute rows a month."""
        where, params = _vantage_filter(vantage)
        rows = self._query(
            "SELECT s.channel, SUM(m.count) FROM minute_counts m"
            " JOIN attempt_sources s ON s.id = m.source"
            " WHERE s.service = ? AND m.minute >= ? AND m.minute < ?"
            + where
            + " GROUP BY s.channel",
            (service, start, end, *params),
        )
        return {r[0]: int(r[1]) for r in rows}

    def blind_minutes(self, service: str, start: int, end: int) -> dict[str, list[int]]:
        """channel → minutes starting in [start, end) whose attempts were all client or
        probe errors (the report's blind spells). Two narrow queries rather than a
        GROUP BY over every minute of the month: the minutes with a failure of any kind
        (few), then, among those that had only client or probe errors, the ones that
        also had an ok attempt."""
        rows = self._query(
            "SELECT s.channel, m.minute, m.outcome FROM minute_counts m"
            " JOIN attempt_sources s ON s.id = m.source"
            " WHERE s.service = ? AND m.minute >= ? AND m.minute < ? AND m.outcome != 'ok'"
            " AND m.count > 0",
            (service, start, end),
        )
        failing: set[tuple[str, int]] = set()
        seeing: set[tuple[str, int]] = set()
        for channel, minute, outcome in rows:
            key = (channel, int(minute))
            (seeing if outcome in QUALIFYING else failing).add(key)
        candidates = sorted(failing - seeing)
        minutes = sorted({m for _, m in candidates})
        for i in range(0, len(minutes), 500):  # SQLite's bound-parameter limit
            chunk = minutes[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            seeing.update(
                (r[0], int(r[1]))
                for r in self._query(
                    "SELECT DISTINCT s.channel, m.minute FROM minute_counts m"
                    " JOIN attempt_sources s ON s.id = m.source"
                    " WHERE s.service = ? AND m.outcome = 'ok' AND m.count > 0"
                    f" AND m.minute IN ({marks})",
                    (service, *chunk),
                )
            )
        out: dict[str, list[int]] = {}
        for channel, minute in candidates:
            if (channel, minute) not in seeing:
                out.setdefault(channel, []).append(minute)
        return out

    def evidence(
        self,
        service: str,
        start: int,
        end: int,
        limit: int = 1000,
        vantage: str | None = None,
    ) -> list[dict[str, Any]]:
        """Attempt evidence (Attempt.to_json() shape) with second in [start, end), by second.

        Latency and launch time are kept to the microsecond; writing the same attempt
        (source, second, slot) twice keeps the first."""
        where, params = _vantage_filter(vantage)
        rows = self._query(
            "SELECT s.service, s.channel, s.probe, e.second, e.slot, e.outcome, e.latency_us,"
            " e.started_us, e.attempt_id, e.detail, s.vantage"
            " FROM evidence e JOIN attempt_sources s ON s.id = e.source"
            " WHERE s.service = ? AND e.second >= ? AND e.second < ?"
            + where
            + " ORDER BY e.second, s.channel, s.probe, e.slot, s.vantage LIMIT ?",
            (service, start, end, *params, limit),
        )
        return [
            {
                "attempt_id": f"{r[2]}:{r[3]}:{r[4]}"
                if r[8] is None
                else f"{r[2]}:{r[3]}:{r[4]}@{r[10]}"
                if r[8] == ""
                else r[8],
                "service": r[0],
                "channel": r[1],
                "probe": r[2],
                "second": r[3],
                "slot": r[4],
                "outcome": r[5],
                "latency": r[6] / 1e6,
                "started": (r[3] * 1_000_000 + r[7]) / 1e6,
                "detail": json.loads(r[9]) if r[9] else {},
                "vantage": r[10],
            }
            for r in rows
        ]

    def prune(self, before: int) -> int:
        """Delete evidence and minute counts older than `before`; runs and maintenance
        windows are kept (they are small and the SLA history needs them)."""
        deleted = 0
        with self._tx() as db:
            # per source, so that each DELETE is a range of the primary key rather than a
            # scan of the whole table while the daemon's writes wait for the lock
            for (source,) in db.execute("SELECT id FROM attempt_sources").fetchall():
                for table, column in (("evidence", "second"), ("minute_counts", "minute")):
                    deleted += db.execute(
                        f"DELETE FROM {table} WHERE source = ? AND {column} < ?", (source, before)
                    ).rowcount
        return deleted

    # ------------------------------------------------------------------ maintenance

    def add_maintenance(
        self, service: str, start: int, end: int, reason: str = "", source: str = "api"
    ) -> MaintenanceWindow:
        """Add a window [start, end). Adding an identical window again returns the stored
        one, so that config windows re-declared at every start are not duplicated."""
        if end <= start:
            raise StoreError(f"maintenance window: end ({end}) must be after start ({start})")
        with self._tx() as db:
            row = db.execute(
                "SELECT id FROM maintenance WHERE service = ? AND start_second = ?"
                " AND end_second = ? AND reason = ? AND source = ?",
                (service, start, end, reason, source),
            ).fetchone()
            if row is not None:
                window_id = int(row[0])
            else:
                cursor = db.execute(
                    "INSERT INTO maintenance (service, start_second, end_second, reason, source)"
                    " VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (service, start, end, reason, source),
                )
                window_id = int(cursor.fetchone()[0])
        return MaintenanceWindow(window_id, service, start, end, reason, source)

    def list_maintenance(
        self, service: str | None = None, start: int | None = None, end: int | None = None
    ) -> list[MaintenanceWindow]:
        """Windows overlapping [start, end) (either bound optional). With `service`, the
        windows that apply to it: its own and those of every service ('*')."""
        sql = "SELECT id, service, start_second, end_second, reason, source FROM maintenance"
        where: list[str] = []
        params: list[Any] = []
        if service is not None:
            where.append("service IN (?, '*')")
            params.append(service)
        if start is not None:
            where.append("end_second > ?")
            params.append(start)
        if end is not None:
            where.append("start_second < ?")
            params.append(end)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY start_second, id", tuple(params))
        return [MaintenanceWindow(*tuple(r)) for r in rows]

    def remove_maintenance(self, window_id: int) -> None:
        with self._tx() as db:
            cursor = db.execute("DELETE FROM maintenance WHERE id = ?", (window_id,))
            if cursor.rowcount == 0:
                raise NotFound(f"maintenance window {window_id} does not exist")
