"""The read model's rows for a bulk write (`dateline import`), by COPY on PostgreSQL.

The same rows `TableWriter.write` writes (it builds them: `period_row`,
`fact_row`), in the same order - closes first, so the exclusion constraint
never sees an overlap - but new rows go by binary COPY instead of INSERT ...
unnest: at hundreds of thousands of rows a batch, COPY is several times
cheaper. Closes and retraction marks (few: only cities already in the store
have stored rows to close) go through the writer's set-based statements.
"""

from __future__ import annotations

from typing import Any

from psycopg import Cursor

from dateline.infrastructure.read_model.projection import Rows
from dateline.infrastructure.read_model.tables import (
    CITY_COLUMNS,
    CITY_TYPES,
    FACT_COLUMNS,
    FACT_TYPES,
    PERIOD_COLUMNS,
    PERIOD_TYPES,
    PostgresTableWriter,
)


def _types(types: str) -> list[str]:
    return [t.strip() for t in types.split(",")]


class PostgresRowCopier:
    """Writes a batch's read-model rows with COPY, in the caller's transaction."""

    def __init__(self, writer: PostgresTableWriter) -> None:
        self.writer = writer
        sql = writer.dialect.sql
        self.copy_periods = sql(f"COPY {{periods}} ({PERIOD_COLUMNS}) FROM STDIN (FORMAT binary)")
        self.copy_cities = sql(f"COPY {{cities}} ({CITY_COLUMNS}) FROM STDIN (FORMAT binary)")
        self.copy_facts = sql(f"COPY {{facts}} ({FACT_COLUMNS}) FROM STDIN (FORMAT binary)")
        self.period_types = _types(PERIOD_TYPES)
        self.city_types = _types(CITY_TYPES)
        self.fact_types = _types(FACT_TYPES)

    def write(self, cursor: Cursor[Any], rows: Rows) -> None:
        w = self.writer
        d = w.dialect
        if rows.closes:
            w._run(
                cursor,
                w.close_period,
                [
                    (d.instant(c.known_to), d.uid(c.city_id), d.day(c.valid_from))
                    for c in rows.closes
                ],
            )
        if rows.opens:
            self._copy(cursor, self.copy_periods, self.period_types, map(w.period_row, rows.opens))
        if rows.cities:
            self._copy(
                cursor,
                self.copy_cities,
                self.city_types,
                (
                    (
                        c.city_id,
                        c.slug,
                        c.name,
                        c.province,
                        c.country,
                        c.lat,
                        c.lon,
                        c.population,
                        c.initial_controller,
                        c.tracked_since,
                        c.registered_at,
                    )
                    for c in rows.cities
                ),
            )
        if rows.facts:
            self._copy(
                cursor,
                self.copy_facts,
                self.fact_types,
                (w.fact_row(cid, e) for (cid, _), e in rows.facts.items()),
            )
        if rows.degraded or rows.retractions:
            # Not produced by an import (no retractions, no degraded city); kept
            # correct all the same, through the writer's own statements.
            w.write(cursor, Rows(degraded=rows.degraded, retractions=rows.retractions))

    @staticmethod
    def _copy(cursor: Cursor[Any], statement: str, types: list[str], rows: Any) -> None:
        with cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
