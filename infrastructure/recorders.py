"""Recorders and factories: the library's, plus what Dateline writes in the same transaction.

Each append writes, in the library's own transaction (eventsourcing's
"searchable timestamps" pattern):
- the event index (`dateline_event_index`): the version known at T in one
  probe, and a unique (city, report_id) that stops a racing duplicate report;
- the read model's rows for what the events changed (inline projection, see
  `infrastructure.read_model.projection`), and the read model's position, so
  an acknowledged write is visible at once and applied exactly once.

The library retries a failed statement 10 times, 0.2 s apart; with a pool
timeout each try can wait seconds, so an outage held every request for half a
minute. Dateline's recorders try once more at most, so an outage is a prompt 503.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from functools import wraps
from typing import Any, TypeVar, cast
from uuid import UUID

import psycopg
from eventsourcing import persistence
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
    PostgresTrackingRecorder,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteFactory
from psycopg import Cursor
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from psycopg_pool import PoolTimeout

from dateline.infrastructure.audit import store as audit
from dateline.infrastructure.read_model.projection import Rows
from dateline.infrastructure.read_model.tables import (
    PROJECTION,
    PostgresDialect,
    PostgresTableWriter,
    SQLiteDialect,
    TableWriter,
    sqlite_instant,
)

INDEX_TABLE = "dateline_event_index"
INDEX_KWARG = "event_index"
ROWS_KWARG = "read_model_rows"
SNAPSHOTS_KWARG = "snapshots"
RETRY_AFTER = 0.1  # seconds before the one retry of a failed statement

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class IndexRow:
    city_id: UUID
    version: int
    slug: str
    event_type: str
    recorded_at: datetime
    occurred_on: date | None
    report_id: str | None


def retry_once(method: F) -> F:
    """The library's recorder method without its 10 x 0.2 s retry loop: one
    retry (a stale pooled connection), then the error."""
    once = getattr(method, "__wrapped__", method)

    @wraps(once)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return once(*args, **kwargs)
        except (persistence.InterfaceError, persistence.OperationalError) as error:
            if isinstance(error.__cause__, PoolTimeout):
                raise  # no connection within the timeout: the database is down
            time.sleep(RETRY_AFTER)
            return once(*args, **kwargs)

    return cast(F, call)


@contextmanager
def immediate_transaction(recorder: SQLiteApplicationRecorder) -> Iterator[SQLiteCursor]:
    """A write transaction that takes SQLite's write lock at BEGIN, so a writer
    in another process makes it wait (busy timeout) instead of failing later."""
    with recorder.datastore.get_connection(commit=True) as connection:
        cursor = connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            connection.commit()
        except sqlite3.IntegrityError as error:
            connection.rollback()
            raise persistence.IntegrityError(error) from error
        except sqlite3.OperationalError as error:
            connection.rollback()
            raise persistence.OperationalError(error) from error
        except BaseException:
            connection.rollback()
            raise


class SQLiteIndexedRecorder(SQLiteApplicationRecorder):
    insert_index = (
        f"INSERT INTO {INDEX_TABLE} (city_id, version, slug, event_type, recorded_at, "
        "occurred_on, report_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tables = TableWriter(SQLiteDialect())
        self.advance_position = (
            "UPDATE dateline_projection_tracking SET notification_id = ?, events = events + ? "
            "WHERE projection = ? AND notification_id >= ?"
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with immediate_transaction(self) as cursor:
            return self._insert_events(cursor, stored_events, **kwargs)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        audit.sqlite_append(c, stored_events, ids or [])  # one hash-log entry per event
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
        snapshots: list[StoredEvent] = kwargs.get(SNAPSHOTS_KWARG) or []
        if snapshots:
            c.executemany(
                "INSERT OR IGNORE INTO stored_snapshots VALUES (?, ?, ?, ?)",
                [
                    (UUID(str(s.originator_id)).hex, s.originator_version, s.topic, s.state)
                    for s in snapshots
                ],
            )
        projected: Rows | None = kwargs.get(ROWS_KWARG)
        if projected is not None and ids:
            self.tables.write(c, projected)
            # Move the position only if nothing before these events awaits a
            # catch-up (it then skips these, already projected).
            c.execute(self.advance_position, (max(ids), projected.events, PROJECTION, min(ids) - 1))
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


class PostgresIndexedRecorder(PostgresApplicationRecorder):
    select_events = retry_once(PostgresApplicationRecorder.select_events)
    select_notifications = retry_once(PostgresApplicationRecorder.select_notifications)
    max_notification_id = retry_once(PostgresApplicationRecorder.max_notification_id)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = self.datastore.schema
        table = SQL("{}.{}").format(Identifier(schema), Identifier(INDEX_TABLE))
        events = SQL("{}.{}").format(Identifier(schema), Identifier(self.events_table_name))
        self.tables = PostgresTableWriter(PostgresDialect(schema))
        self.insert_index = SQL(
            "INSERT INTO {table} (city_id, version, slug, event_type, recorded_at, "
            "occurred_on, report_id) SELECT * FROM unnest("
            "%b::uuid[], %b::bigint[], %b::text[], %b::text[], %b::timestamptz[], "
            "%b::date[], %b::text[])"
        ).format(table=table)
        # Under the library's table lock these events hold the n highest ids.
        self.advance_position = SQL(
            "UPDATE {tracking} SET notification_id = "
            "(SELECT MAX(notification_id) FROM {events}), events = events + %(n)s "
            "WHERE projection = %(projection)s AND notification_id >= COALESCE(("
            "SELECT notification_id FROM {events} ORDER BY notification_id DESC "
            "OFFSET %(n)s LIMIT 1), 0)"
        ).format(
            tracking=SQL("{}.{}").format(
                Identifier(schema), Identifier("dateline_projection_tracking")
            ),
            events=events,
        )
        self.select_version_known_at = SQL(
            "SELECT MAX(version) AS v FROM {table} WHERE city_id = %s AND recorded_at <= %s"
        ).format(table=table)
        self.select_slugs = SQL("SELECT slug FROM {table} WHERE version = 1 ORDER BY slug").format(
            table=table
        )
        self.audit_append = audit.postgres_append_statement(self.datastore.schema)
        self.insert_snapshots = SQL(
            "INSERT INTO {table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "ON CONFLICT DO NOTHING"
        ).format(table=SQL("{}.{}").format(Identifier(schema), Identifier("dateline_snapshots")))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._insert_once(stored_events, **kwargs)

    @retry_once
    def _insert_once(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The library's append (table lock, NOTIFY, INSERT ... RETURNING), then
        Dateline's rows, in one transaction and one pipeline: a round trip or
        two, whatever the rows. The first error is raised: a conflict in the log,
        or a read-model table refusing its rows."""
        if not stored_events:
            return None
        ids: list[int] = []
        with self.datastore.get_connection() as conn:
            failed: psycopg.Error | None = None
            try:
                # BEGIN ... COMMIT sent with the statements: one round trip.
                with conn.pipeline() as pipeline, conn.cursor() as control, conn.cursor() as curs:
                    control.execute("BEGIN")
                    self._lock_table(curs)
                    self._notify_channel(curs)
                    rows = [
                        self.construct_pg_stored_event(
                            e.originator_id, e.originator_version, e.topic, e.state
                        )
                        for e in stored_events
                    ]
                    curs.execute(self.insert_events_statement, (rows,), prepare=True)
                    with conn.cursor() as extra:
                        self._insert_dateline_rows(extra, len(stored_events), **kwargs)
                    # The hash-linked log's entries, in this transaction (and this order).
                    audit.postgres_append(conn, self.audit_append, stored_events)
                    control.execute("COMMIT")
                    pipeline.sync()
                    ids = [row["notification_id"] for row in curs.fetchall()]
            except psycopg.Error as error:  # the first one: a conflict, or a refusal
                failed = error
            if failed is not None:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")  # what failed skipped the COMMIT
                raise failed
        return ids

    def _insert_dateline_rows(self, curs: Cursor[DictRow], count: int, **kwargs: Any) -> None:
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
            curs.execute(self.insert_index, columns, prepare=False)
        snapshots: list[StoredEvent] = kwargs.get(SNAPSHOTS_KWARG) or []
        if snapshots:
            columns = [
                [s.originator_id for s in snapshots],
                [s.originator_version for s in snapshots],
                [s.topic for s in snapshots],
                [s.state for s in snapshots],
            ]
            curs.execute(self.insert_snapshots, columns, prepare=False)
        projected: Rows | None = kwargs.get(ROWS_KWARG)
        if projected is not None:
            self.tables.write(curs, projected)
            curs.execute(
                self.advance_position, {"n": count, "projection": PROJECTION}, prepare=False
            )

    def version_known_at(self, city_id: UUID, known_at: datetime) -> int | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_version_known_at, (city_id, known_at))
            row = curs.fetchone()
            return None if row is None or row["v"] is None else int(row["v"])

    def city_slugs(self) -> list[str]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_slugs)
            return [row["slug"] for row in curs.fetchall()]


class PostgresSnapshotRecorder(PostgresAggregateRecorder):
    insert_events = retry_once(PostgresAggregateRecorder.insert_events)
    select_events = retry_once(PostgresAggregateRecorder.select_events)


class DatelinePostgresFactory(PostgresFactory):
    aggregate_recorder_class = PostgresSnapshotRecorder
    application_recorder_class = PostgresIndexedRecorder
    tracking_recorder_class = PostgresTrackingRecorder


class DatelineSQLiteFactory(SQLiteFactory):
    application_recorder_class = SQLiteIndexedRecorder
