"""Blocklist listing spells (migration 0008_blocklist_spells.sql; the SQL both backends
speak, monitor/store/sql.py). One row per listing of a (service, target, zone), open
(`ended_at` NULL) until the delisting is confirmed."""

from __future__ import annotations

from typing import Any

from monitor.store.base import BlocklistSpell
from monitor.store.sql import SqlEngine


def _spell(row: Any) -> BlocklistSpell:
    codes = str(row["codes"])
    return BlocklistSpell(
        service=row["service"],
        target=row["target"],
        zone=row["zone"],
        started_at=float(row["started_at"]),
        ended_at=None if row["ended_at"] is None else float(row["ended_at"]),
        codes=tuple(codes.split(",")) if codes else (),
        txt=row["txt"],
        id=int(row["id"]),
    )


class BlocklistMixin(SqlEngine):
    def open_spell(self, spell: BlocklistSpell) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO blocklist_spells (service, target, zone, started_at, codes, txt)"
                " SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM blocklist_spells"
                " WHERE service = ? AND target = ? AND zone = ? AND ended_at IS NULL)"
                " ON CONFLICT (service, target, zone, started_at) DO NOTHING",
                (
                    spell.service,
                    spell.target,
                    spell.zone,
                    spell.started_at,
                    ",".join(spell.codes),
                    spell.txt,
                    spell.service,
                    spell.target,
                    spell.zone,
                ),
            )

    def close_spell(self, service: str, target: str, zone: str, ended_at: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE blocklist_spells SET ended_at = ? WHERE service = ? AND target = ?"
                " AND zone = ? AND ended_at IS NULL",
                (ended_at, service, target, zone),
            )

    def spells(
        self,
        service: str | None = None,
        start: float | None = None,
        end: float | None = None,
        open_only: bool = False,
    ) -> list[BlocklistSpell]:
        where: list[str] = []
        params: list[object] = []
        if service is not None:
            where.append("service = ?")
            params.append(service)
        if end is not None:
            where.append("started_at < ?")
            params.append(end)
        if start is not None:
            where.append("(ended_at IS NULL OR ended_at >= ?)")
            params.append(start)
        if open_only:
            where.append("ended_at IS NULL")
        sql = "SELECT * FROM blocklist_spells"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_spell(r) for r in self._query(sql + " ORDER BY started_at, id", params)]
