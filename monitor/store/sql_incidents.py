"""Tables of incidents and their timelines (migration 0003_incidents.sql; the SQL both
backends speak, monitor/store/sql.py).

An incident is one row, rewritten whole by `update_incident`; its timeline is append-only
(`incident_events`). The `data` columns hold JSON objects.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from alerting.model import dedup_key
from monitor.store.base import Incident, IncidentEvent, NotFound
from monitor.store.sql import SqlEngine

# the row's columns in dataclass order, except `id` (assigned by the store) and `data` (JSON)
_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Incident) if f.name not in ("id", "data")
)


# SET expressions for update_incident (column names there read the row being replaced)
_STICKY: dict[str, str] = {
    "acknowledged_at": "COALESCE(acknowledged_at, ?)",
    "acknowledged_by": "COALESCE(acknowledged_by, ?)",
    "resolved_at": "COALESCE(resolved_at, ?)",
    "resolved_by": "COALESCE(resolved_by, ?)",
    "state": (
        "CASE WHEN state = 'resolved' THEN 'resolved' "
        "WHEN ? = 'open' AND COALESCE(acknowledged_at, ?) IS NOT NULL THEN 'acknowledged' "
        "ELSE ? END"
    ),
}


def _incident(row: Any) -> Incident:
    values = {name: row[name] for name in _COLUMNS}
    return Incident(id=row["id"], data=json.loads(row["data"]), **values)


def _event(row: Any) -> IncidentEvent:
    return IncidentEvent(
        incident_id=row["incident_id"],
        at=row["at"],
        kind=row["kind"],
        data=json.loads(row["data"]),
        id=row["id"],
    )


class IncidentsMixin(SqlEngine):
    def create_incident(self, incident: Incident) -> Incident:
        cols = ", ".join((*_COLUMNS, "data"))
        marks = ", ".join("?" for _ in (*_COLUMNS, "data"))
        values = [getattr(incident, name) for name in _COLUMNS]
        if incident.id:
            key = dedup_key(incident.service, incident.id)
            values[_COLUMNS.index("dedup_key")] = key
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO incidents (id, {cols}) VALUES (?, {marks})"
                    " ON CONFLICT(id) DO NOTHING",
                    (incident.id, *values, json.dumps(incident.data)),
                )
                self._bump_ids(db, "incidents")
            return dataclasses.replace(incident, dedup_key=key)
        with self._tx() as db:
            cur = db.execute(
                f"INSERT INTO incidents ({cols}) VALUES ({marks}) RETURNING id",
                (*values, json.dumps(incident.data)),
            )
            new_id = int(cur.fetchone()[0])
            # the key notifiers deduplicate on; it needs the id, hence the second statement
            # inside the same transaction
            key = dedup_key(incident.service, new_id)
            db.execute("UPDATE incidents SET dedup_key = ? WHERE id = ?", (key, new_id))
        return dataclasses.replace(incident, id=new_id, dedup_key=key)

    def update_incident(self, incident: Incident) -> None:
        """Rewrite the row, except that a person's acknowledgement and a resolution, once
        stored, stick: the policy (on the event loop) and the API (in a thread) each write
        whole rows, and a writer holding a copy read just before the other's write must not
        undo an ack (that would escalate an acknowledged incident) or a resolve."""
        sets = ", ".join(f"{name} = {_STICKY.get(name, '?')}" for name in (*_COLUMNS, "data"))
        values = [getattr(incident, name) for name in _COLUMNS]
        # the state CASE reads the incoming state and acknowledged_at a second time
        state_at = _COLUMNS.index("state")
        extra = (incident.state, incident.acknowledged_at, incident.state)
        params = [*values[:state_at], *extra, *values[state_at + 1 :]]
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE incidents SET {sets} WHERE id = ?",
                (*params, json.dumps(incident.data), incident.id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no incident {incident.id}")

    def max_incident_id(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM incidents")[0][0])

    def get_incident(self, incident_id: int) -> Incident:
        rows = self._query("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        if not rows:
            raise NotFound(f"no incident {incident_id}")
        return _incident(rows[0])

    def list_incidents(
        self,
        service: str | None = None,
        state: str | None = None,
        severity: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Newest first. `since`/`until` select incidents whose life [opened_at, resolved_at]
        overlaps [since, until) — an incident still unresolved overlaps every later time."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("service", service), ("state", state), ("severity", severity)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if until is not None:
            where.append("opened_at < ?")
            params.append(until)
        if since is not None:
            where.append("(resolved_at IS NULL OR resolved_at >= ?)")
            params.append(since)
        sql = "SELECT * FROM incidents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY opened_at DESC, id DESC LIMIT ?"
        params.append(max(0, int(limit)))
        return [_incident(row) for row in self._query(sql, tuple(params))]

    def add_event(self, event: IncidentEvent) -> IncidentEvent:
        with self._tx() as db:
            try:
                cur = db.execute(
                    "INSERT INTO incident_events (incident_id, at, kind, data)"
                    " VALUES (?, ?, ?, ?) RETURNING id",
                    (event.incident_id, event.at, event.kind, json.dumps(event.data)),
                )
                new_id = int(cur.fetchone()[0])
            except self._integrity_errors:
                raise NotFound(f"no incident {event.incident_id}") from None
        return dataclasses.replace(event, id=new_id)

    def events(self, incident_id: int) -> list[IncidentEvent]:
        rows = self._query(
            "SELECT * FROM incident_events WHERE incident_id = ? ORDER BY id", (incident_id,)
        )
        return [_event(row) for row in rows]
