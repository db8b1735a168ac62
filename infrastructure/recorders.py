"""Event recorders that also write the event index, in the append's transaction.

The index row per event (city, version, record time, type, date, report id)
lets "as known at T" find the version to replay with one indexed lookup, and its
unique (city, report_id) stops a racing duplicate report at the storage layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from infrastructure.audit import store as audit  # issue 9: the hash-linked log

INDEX_TABLE = "dateline_event_index"
INDEX_KWARG = "event_index"


@dataclass(frozen=True, slots=True)
class IndexRow:
    city_id: UUID
    version: int
    slug: str
    event_type: str
    recorded_at: datetime
    occurred_on: date | None
    report_id: str | None


def sqlite_instant(moment: datetime) -> str:
    """Fixed-width UTC text, so SQLite compares instants as strings correctly."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class SQLiteIndexedRecorder(SQLiteApplicationRecorder):
    insert_index = (
        f"INSERT INTO {INDEX_TABLE} (city_id, version, slug, event_type, recorded_at, "
        "occurred_on, report_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        audit.sqlite_append(c, stored_events, ids or [])  # issue 9: one log entry per event
        rows: list[IndexRow] = kwargs.get(INDEX_KWARG) or []
        if rows:
            c.executemany(
                self.insert_index,
                [
                    (
                        r.city_id.hex,
                        r.version,
                        r.slug,
                        r.event_type,
                        sqlite_instant(r.recorded_at),
                        r.occurred_on.isoformat() if r.occurred_on else None,
                        r.report_id,
                    )
                    for r in rows
                ],
            )
        return ids

    def version_known_at(self, city_id: UUID, known_at: datetime) -> int | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT MAX(version) FROM {INDEX_TABLE} WHERE city_id = ? AND recorded_at <= ?",
                (city_id.hex, sqlite_instant(known_at)),
            )
            version = c.fetchone()[0]
            return None if version is None else int(version)

    def city_slugs(self) -> list[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT slug FROM {INDEX_TABLE} WHERE version = 1 ORDER BY slug")
            return [row[0] for row in c.fetchall()]

    def count_events(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT COUNT(*) FROM {INDEX_TABLE}")
            return int(c.fetchone()[0])


class PostgresIndexedRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = SQL("{}.{}").format(Identifier(self.datastore.schema), Identifier(INDEX_TABLE))
        self.insert_index = SQL(
            "INSERT INTO {table} (city_id, version, slug, event_type, recorded_at, "
            "occurred_on, report_id) SELECT * FROM unnest("
            "%s::uuid[], %s::bigint[], %s::text[], %s::text[], %s::timestamptz[], "
            "%s::date[], %s::text[])"
        ).format(table=table)
        self.select_version_known_at = SQL(
            "SELECT MAX(version) AS v FROM {table} WHERE city_id = %s AND recorded_at <= %s"
        ).format(table=table)
        self.select_slugs = SQL("SELECT slug FROM {table} WHERE version = 1 ORDER BY slug").format(
            table=table
        )
        self.select_count = SQL("SELECT COUNT(*) AS n FROM {table}").format(table=table)
        self.audit_append = audit.postgres_append_statement(self.datastore.schema)  # issue 9

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # After the library's insert (LOCK TABLE, NOTIFY, INSERT ... RETURNING), and on
        # a second cursor: `curs` must keep the RETURNING rows, and extra statements
        # placed before the library's sync turn conflicts into pipeline errors.
        super()._insert_stored_events(curs, stored_events, **kwargs)
        rows: list[IndexRow] = kwargs.get(INDEX_KWARG) or []
        if rows:
            columns = [
                [r.city_id for r in rows],
                [r.version for r in rows],
                [r.slug for r in rows],
                [r.event_type for r in rows],
                [r.recorded_at for r in rows],
                [r.occurred_on for r in rows],
                [r.report_id for r in rows],
            ]
            with curs.connection.cursor() as index_cursor:
                index_cursor.execute(self.insert_index, columns, prepare=False)
        audit.postgres_append(curs.connection, self.audit_append, stored_events)  # issue 9

    def version_known_at(self, city_id: UUID, known_at: datetime) -> int | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_version_known_at, (city_id, known_at))
            row = curs.fetchone()
            return None if row is None or row["v"] is None else int(row["v"])

    def city_slugs(self) -> list[str]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_slugs)
            return [row["slug"] for row in curs.fetchall()]

    def count_events(self) -> int:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_count)
            row = curs.fetchone()
            return 0 if row is None else int(row["n"])
