"""Writing many read-model rows at once: COPY on PostgreSQL, executemany on SQLite.

The rows are the projector's own (`projection.Rows`), so whatever computes
them in memory (a rebuild, an import) writes them here. The writer uses the
tables its dialect names: the live ones, or a rebuild's fresh ones
(`Dialect(suffix="_next")`). The order is the incremental writer's (closes
before inserts, retractions last), so rows whose rectangles close stored ones
may be written into tables that hold rows already; into empty tables without
indexes (a rebuild), a load is only inserts.

PostgreSQL: one `COPY ... FROM STDIN (FORMAT binary)` per table, the rows sent
as typed binary values (psycopg's C writer), no statement per row.

Each period row carries its causing event's source (migration 0007), taken from
the facts this writer has written (a period's cause is never later than the
event that opened it, and facts are handed over as soon as they are made); each
batch sets its cities' latest version with one statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from dateline.domain.log import LoggedEvent
from dateline.infrastructure.read_model.projection import Rows
from dateline.infrastructure.read_model.tables import (
    CITY_COLUMNS,
    CITY_TYPES,
    FACT_COLUMNS,
    FACT_TYPES,
    PERIOD_COLUMNS,
    PERIOD_TYPES,
    Dialect,
    PostgresDialect,
    PostgresTableWriter,
    TableWriter,
    event_version,
    marks,
)

DEGRADED_COLUMNS = "city_id, slug, event_id, reason, noticed_at"
DEGRADED_TYPES = "uuid, text, text, text, timestamptz"


NONE: tuple[str | None, str | None] = (None, None)
PERIOD_ROW_COLUMNS = PERIOD_COLUMNS + ", source_name, source_url"
PERIOD_ROW_TYPES = PERIOD_TYPES + ", text, text"
# A city's version starts at 0 (set by `set_versions`): a session table made
# LIKE the live one has no column defaults.
CITY_ROW_COLUMNS = CITY_COLUMNS + ", version, version_at"
CITY_ROW_TYPES = CITY_TYPES + ", bigint, timestamptz"


class BulkWriter(TableWriter):
    """Writes `Rows` with the cursor of the caller's transaction (SQLite: executemany)."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        # The source of every event written (or looked up), by (city, version).
        self.sources: dict[tuple[UUID, int], tuple[str | None, str | None]] = {}
        self.select_source = dialect.sql(
            "SELECT source_name, source_url FROM {facts} WHERE city_id = %s AND version = %s"
        )
        self.insert_period_row = dialect.sql(
            f"INSERT INTO {{periods}} ({PERIOD_ROW_COLUMNS}) VALUES ({marks(13)})"
        )
        self.insert_city_row = dialect.sql(
            f"INSERT INTO {{cities}} ({CITY_ROW_COLUMNS}) VALUES ({marks(13)})"
        )

    def write(self, cursor: Any, rows: Rows) -> None:
        for (cid, version), e in rows.facts.items():
            self.sources[(cid, version)] = (e.source.name, e.source.url) if e.source else NONE
        self.find_sources(cursor, rows)
        self.close_periods(cursor, rows)
        self.insert(cursor, "periods", (self.sourced_row(p) for p in rows.opens), len(rows.opens))
        self.insert(cursor, "cities", (self.city_row(c) for c in rows.cities), len(rows.cities))
        self.insert(
            cursor,
            "facts",
            (self.fact_row(cid, e) for (cid, _), e in rows.facts.items()),
            len(rows.facts),
        )
        self.set_versions(cursor, rows)
        self.insert(
            cursor,
            "degraded",
            (
                self.degraded_row(m.city_id, m.slug, m.event_id, m.reason, m.noticed_at)
                for m in rows.degraded
            ),
            len(rows.degraded),
        )
        self.retract_facts(cursor, rows)

    def insert(self, cursor: Any, kind: str, rows: Iterable[Sequence[Any]], count: int) -> None:
        """Insert `rows` (store values, in the table's column order) into `kind`."""
        if count:
            statement = {
                "periods": self.insert_period_row,
                "cities": self.insert_city_row,
                "facts": self.insert_fact,
                "degraded": self.insert_degraded,
            }[kind]
            cursor.executemany(statement, list(rows))

    def find_sources(self, cursor: Any, rows: Rows) -> None:
        """Look up, in the tables, the causes this writer has not written (the
        events appended during a rebuild, written by a writer of their own)."""
        for p in rows.opens:
            cause = event_version(p.state.event_id)
            if cause is not None and (p.city_id, cause) not in self.sources:
                cursor.execute(self.select_source, (self.dialect.uid(p.city_id), cause))
                row = cursor.fetchone()
                found = (row["source_name"], row["source_url"]) if row else NONE
                self.sources[(p.city_id, cause)] = found

    def sourced_row(self, p: Any) -> tuple[Any, ...]:
        """`period_row` with the source of the event in its `event_id`."""
        cause = event_version(p.state.event_id)
        name, url = self.sources.get((p.city_id, cause), NONE) if cause else NONE
        return (*self.period_row(p), name, url)

    def city_row(self, c: Any) -> tuple[Any, ...]:
        """The incremental writer's city row, with no version yet (set_versions sets it)."""
        return (*super().city_row(c), 0, None)


class PostgresBulkWriter(BulkWriter, PostgresTableWriter):
    """Inserts with COPY in binary; closes and retractions as the incremental writer."""

    COPIES = {
        "periods": ("periods", PERIOD_ROW_COLUMNS, PERIOD_ROW_TYPES),
        "cities": ("cities", CITY_ROW_COLUMNS, CITY_ROW_TYPES),
        "facts": ("facts", FACT_COLUMNS, FACT_TYPES),
        "degraded": ("degraded", DEGRADED_COLUMNS, DEGRADED_TYPES),
    }

    def __init__(self, dialect: PostgresDialect) -> None:
        super().__init__(dialect)
        s = dialect.sql
        self.copies = {
            kind: (
                s(f"COPY {{{table}}} ({columns}) FROM STDIN (FORMAT binary)"),
                [name.strip() for name in types.split(",")],
            )
            for kind, (table, columns, types) in self.COPIES.items()
        }

    # PostgreSQL's dialect passes uuids, dates and instants through as they are:
    # the COPY rows are built without its per-value calls (`period_row`, `fact_row`
    # give the same tuples).
    def period_row(self, p: Any) -> tuple[Any, ...]:
        state = p.state
        return (
            p.city_id,
            p.valid_from,
            p.valid_to,
            p.known_from,
            p.known_to,
            state.status.value,
            state.controller,
            state.contested_by,
            state.since,
            state.event_id,
            p.version,
        )

    def fact_row(self, cid: UUID, e: LoggedEvent) -> tuple[Any, ...]:
        source, r = e.source, e.retracted
        return (
            cid,
            e.version,
            e.city,
            e.type,
            e.recorded_at,
            e.occurred_on,
            e.actor,
            *((source.name, source.url, source.quote) if source else (None, None, None)),
            e.note,
            e.report_id,
            e.reported_by,
            e.retracts,
            e.reason,
            *(
                (r.event_id, r.reason, r.retracted_by, r.recorded_at)
                if r
                else (None, None, None, None)
            ),
        )

    def insert(self, cursor: Any, kind: str, rows: Iterable[Sequence[Any]], count: int) -> None:
        if not count:
            return
        statement, types = self.copies[kind]
        with cursor.copy(statement) as copy:
            copy.set_types(types)
            write_row = copy.write_row
            for row in rows:
                write_row(row)


def bulk_writer(dialect: Dialect) -> BulkWriter:
    """The bulk writer for the dialect's store and tables."""
    if isinstance(dialect, PostgresDialect):
        return PostgresBulkWriter(dialect)
    return BulkWriter(dialect)
