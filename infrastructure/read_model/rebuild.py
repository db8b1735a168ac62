"""`dateline projections rebuild`: the read model again from the whole log, set-based.

1. Stream the stored events once, in notification order, in large fetches;
   decode each with the application's mapper and fold it into its city, in
   memory (the `City` aggregate, whose derived intervals give each event's
   `IntervalChange`); one `Projector` collects every row. A city whose event
   cannot be decoded or applied is degraded from that event on (its earlier
   rows stay, as an inline append would leave them).
2. Load the rows in bulk (`bulk`: COPY on PostgreSQL) into fresh tables
   (`<table>_next`, like the live ones), in one transaction, then give them the
   live tables' indexes and constraints. On PostgreSQL the load runs while the
   fold does: the rows no later event can change are handed every
   DRAIN_EVENTS events to a loader thread, and the periods table has its
   constraints from the start (the exclusion constraint's GiST index is the
   server's main cost), so the server checks rows while Python folds. On
   SQLite the fold comes first and the write lock is taken only for the load.
3. Still in that transaction, hold the writers off (PostgreSQL: the event
   table's EXCLUSIVE lock, which every append takes first; SQLite: the write
   lock, held since BEGIN IMMEDIATE), fold and write the events appended since
   the streamed position, then drop the live tables, rename the fresh ones in,
   and set the position and event count. Readers never wait for the load: they
   read the old tables, complete, until the commit, and the new ones after it.

A PostgreSQL role that may not create or drop the tables (a DML-only service
role) loads session tables instead, and in step 3 replaces the live rows with
theirs (DELETE and INSERT ... SELECT): readers still see the old rows until the
commit; appends wait for the copy.
"""

from __future__ import annotations

import itertools
import queue
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import psycopg
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from dateline.domain.city import City
from dateline.infrastructure.progress import Progress
from dateline.infrastructure.read_model.bulk import BulkWriter, bulk_writer
from dateline.infrastructure.read_model.projection import (
    DegradedMark,
    Projector,
    Rows,
    refusal_reason,
)
from dateline.infrastructure.read_model.queries import ReadModel
from dateline.infrastructure.read_model.tables import (
    PROJECTION,
    TABLES,
    Dialect,
    PostgresDialect,
    SQLiteDialect,
    TableWriter,
    fresh,
)
from dateline.infrastructure.recorders import retry_once


class CatchUp(Protocol):
    """What the rebuild uses of the read model's catch-up (catch_up.CatchUp),
    named here so that the two modules do not import each other."""

    app: Any  # the Dateline application: its recorder and mapper
    read_model: ReadModel
    tables: TableWriter

    def _write(self) -> AbstractContextManager[Any]: ...


FETCH_SIZE = 5000  # events per fetch from the log; progress is told once per fetch
DRAIN_EVENTS = 20_000  # PostgreSQL: rows handed to the loader every so many events
SUFFIX = "_next"
LOCK_WAIT_MS = 100  # the swap's wait for the live tables, per attempt
LOCK_ATTEMPTS = 600
SWAPPED = ("periods", "facts", "cities", "degraded")  # the tracking row is updated


def stream_log(recorder: Any, after: int = 0) -> Iterator[Sequence[Notification]]:
    """The stored events after notification `after`, in notification order, a
    fetch (FETCH_SIZE) at a time."""
    position = after
    while True:
        batch = recorder.select_notifications(
            start=position, limit=FETCH_SIZE, inclusive_of_start=False
        )
        if not batch:
            return
        yield batch
        if len(batch) < FETCH_SIZE:
            return
        position = batch[-1].id


def stream_log_postgres(recorder: Any, after: int = 0) -> Iterator[Sequence[Notification]]:
    """`stream_log` on PostgreSQL: the same rows, in the same fetches, but only
    the five columns a notification holds, as tuples (the library's
    `select_notifications` fetches dict rows of every column)."""
    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state "
        "FROM {schema}.{table} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
    ).format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
    )
    position = after
    while True:
        batch = _fetch(recorder, statement, position)
        if not batch:
            return
        yield batch
        if len(batch) < FETCH_SIZE:
            return
        position = batch[-1].id


@retry_once
def _fetch(recorder: Any, statement: Composed, position: int) -> list[Notification]:
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
        c.execute(statement, (position, FETCH_SIZE), prepare=True)
        return [
            Notification(
                id=row[0],
                originator_id=row[1],
                originator_version=row[2],
                topic=row[3],
                state=bytes(row[4]),
            )
            for row in c.fetchall()
        ]


class Fold:
    """Each city folded in memory from its events, and the rows they project."""

    def __init__(self, catch_up: CatchUp) -> None:
        self.mapper = catch_up.app.mapper
        self.cities: dict[UUID, City] = {}
        self.degraded: set[UUID] = set()
        self.applied = 0  # events whose rows were projected

    def apply(self, batch: Sequence[Notification], projector: Projector) -> int:
        """Fold and project each event; returns how many were applied."""
        applied = 0
        mapper, cities, degraded = self.mapper, self.cities, self.degraded
        add = projector.add
        for notification in batch:
            cid: Any = notification.originator_id
            if cid in degraded:
                continue
            city = cities.get(cid)
            try:
                event: Any = mapper.to_domain_event(notification)
                if city is None and event.originator_version != 1:
                    raise LookupError(f"version {event.originator_version} has no city before it")
                city = event.mutate(city)
                assert isinstance(city, City)
                changes = city.take_interval_changes()
                add(city.slug, event, changes.get(event.originator_version))
            except Exception as error:  # contained: this city only, from this event on
                slug = city.slug if city is not None else UUID(str(cid)).hex
                projector.rows.degraded.append(
                    DegradedMark(
                        UUID(str(cid)),
                        slug,
                        f"{slug}-{notification.originator_version}",
                        refusal_reason(error),
                        datetime.now().astimezone(),
                    )
                )
                degraded.add(cid)
                cities.pop(cid, None)
                continue
            cities[cid] = city
            applied += 1
        self.applied += applied
        return applied


class Rebuild:
    """One rebuild of the read model (see the module's text)."""

    def __init__(self, catch_up: CatchUp) -> None:
        self.catch_up = catch_up
        self.app = catch_up.app
        self.live = catch_up.read_model.dialect
        self.next = (
            PostgresDialect(self.live.schema, SUFFIX)
            if isinstance(self.live, PostgresDialect)
            else SQLiteDialect(SUFFIX)
        )
        self.timings: dict[str, float] = {}

    def run(self, progress: Progress | None = None) -> int:
        """Rebuild; returns the events applied. `progress`, if given, is told the
        events applied by each fetch, with the log's head as the total."""
        head = self.app.recorder.max_notification_id() or 0
        if progress:
            progress(0, head)
        fold = Fold(self.catch_up)
        projector = Projector()
        started = time.perf_counter()
        if not isinstance(self.live, PostgresDialect):
            # SQLite: fold first, the write lock only for the load and the swap.
            position = self._fold(fold, projector, None, progress, head)
            self.timings["fold_s"] = time.perf_counter() - started
            with self.catch_up._write() as cursor:
                tables = _Tables(self.live, cursor)
                tables.create_fresh()
                bulk_writer(self.next).write(cursor, projector.rows)
                self._finish(cursor, tables, fold, position, progress, head)
            return fold.applied
        with self.catch_up._write() as cursor:
            # One rebuild at a time per schema; appends and reads go on.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"dateline:rebuild:{self.live.schema}",),
            )
            swap = self._may_swap(cursor)
            target = self.next if swap else PostgresDialect("pg_temp", SUFFIX)
            tables = _Tables(self.live, cursor, temporary=not swap)
            tables.create_fresh()
            # The periods' constraints (the exclusion's GiST index is the costly
            # one) from the start: the server checks the rows as they arrive,
            # while the fold goes on; the other tables are indexed after the load.
            tables.index_fresh([TABLES["periods"]])
            with _Loader(bulk_writer(target), cursor) as loader:
                position = self._fold(fold, projector, loader, progress, head)
                fold_s = time.perf_counter() - started
                loader.put(projector.rows)
            self.timings["fold_and_load_s"] = time.perf_counter() - started
            self.timings["fold_s"] = fold_s  # the main thread's, waits for the loader included
            self.timings["load_busy_s"] = loader.busy
            start = time.perf_counter()
            tables.index_fresh([TABLES[kind] for kind in SWAPPED if kind != "periods"])
            self.timings["index_s"] = time.perf_counter() - start
            self._finish(cursor, tables, fold, position, progress, head)
        return fold.applied

    def _fold(
        self,
        fold: Fold,
        projector: Projector,
        loader: _Loader | None,
        progress: Progress | None,
        head: int,
    ) -> int:
        """Fold the whole log; hand the rows no later event changes to `loader`
        every DRAIN_EVENTS events, if there is one. Returns the position."""
        position, pending = 0, 0
        for batch in self._stream(0):
            done = fold.apply(batch, projector)
            position = batch[-1].id
            pending += len(batch)
            if loader is not None and pending >= DRAIN_EVENTS:
                loader.put(projector.drain())
                pending = 0
            if progress:
                progress(done, head)
        return position

    def _finish(
        self,
        cursor: Any,
        tables: _Tables,
        fold: Fold,
        position: int,
        progress: Progress | None,
        head: int,
    ) -> None:
        """With the writers held off: the events appended since `position`,
        then the swap, the position and the event count."""
        start = time.perf_counter()
        tables.analyze()
        self._hold_writers(cursor)
        tail = Projector()
        for batch in self._stream(position):
            done = fold.apply(batch, tail)
            position = batch[-1].id
            if progress:
                progress(done, head)
        if tables.temporary:
            tables.replace_live()
            bulk_writer(self.live).write(cursor, tail.rows)
        else:
            self._write_tail(cursor, tail.rows)
            tables.swap()
        cursor.execute(self.catch_up.tables.reset_position, (position, fold.applied, PROJECTION))
        self.timings["finish_s"] = time.perf_counter() - start
        self.timings["tail_events"] = tail.rows.events

    # -------------------------------------------------------------- internals
    def _stream(self, after: int) -> Iterator[Sequence[Notification]]:
        if isinstance(self.app.recorder, PostgresApplicationRecorder):
            return stream_log_postgres(self.app.recorder, after)
        return stream_log(self.app.recorder, after)

    def _may_swap(self, cursor: Any) -> bool:
        """Whether this role may create tables in the schema and drop and rename
        the read model's (owns them). A service role granted only DML (see
        `audit.roles`) may not: its rebuild loads session tables, then replaces
        the live rows in the final phase, the writers held off meanwhile."""
        names = [f'"{self.live.schema}".{TABLES[kind]}' for kind in SWAPPED]  # type: ignore[attr-defined]
        cursor.execute(
            "SELECT has_schema_privilege(%s, 'CREATE') AND bool_and("
            "pg_has_role(c.relowner, 'USAGE')) AS may FROM pg_class c "
            "WHERE c.oid = ANY(%s::regclass[])",
            (self.live.schema, names),  # type: ignore[attr-defined]
        )
        row = cursor.fetchone()
        return bool(row and row["may"])

    def _hold_writers(self, cursor: Any) -> None:
        """PostgreSQL: every append takes the event table's EXCLUSIVE lock first
        and keeps it to its commit; holding it, no append is in flight and none
        begins until this transaction ends (reads are not blocked). SQLite: the
        write lock is held already (BEGIN IMMEDIATE)."""
        if isinstance(self.live, PostgresDialect):
            events = self.app.recorder.events_table_name
            cursor.execute(f'LOCK TABLE "{self.live.schema}".{events} IN EXCLUSIVE MODE')

    def _write_tail(self, cursor: Any, rows: Rows) -> None:
        """The events appended during the load: few, written like a catch-up's
        (their rows may close rows of the load), into the fresh tables."""
        bulk_writer(self.next).write(cursor, rows)


class _Loader:
    """Writes rows handed to it on its own thread, with the transaction's cursor
    (used by nothing else meanwhile): the server inserts and checks one chunk
    while the fold computes the next."""

    def __init__(self, writer: BulkWriter, cursor: Any) -> None:
        self.writer = writer
        self.cursor = cursor
        self.queue: queue.Queue[Rows | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.busy = 0.0  # seconds spent writing
        self.thread = threading.Thread(target=self._run, name="dateline-rebuild-load")

    def __enter__(self) -> _Loader:
        self.thread.start()
        return self

    def put(self, rows: Rows) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(rows)

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and error is None:
            raise self.error

    def _run(self) -> None:
        while (rows := self.queue.get()) is not None:
            if self.error is None:
                started = time.perf_counter()
                try:
                    self.writer.write(self.cursor, rows)
                except BaseException as error:  # raised in the caller's thread
                    self.error = error
                self.busy += time.perf_counter() - started


class _Tables:
    """The fresh tables: created like the live ones, indexed like them after the
    load, and swapped in for them."""

    def __init__(self, live: Dialect, cursor: Any, *, temporary: bool = False) -> None:
        self.cursor = cursor
        self.postgres = isinstance(live, PostgresDialect)
        self.schema = live.schema if isinstance(live, PostgresDialect) else ""
        self.temporary = temporary  # PostgreSQL, no right to swap: session tables
        self.names = [TABLES[kind] for kind in SWAPPED]
        # (table, DDL to run on the fresh table after the load, rename at the swap)
        self.indexes: list[tuple[str, str, str | None]] = []

    def create_fresh(self) -> None:
        c = self.cursor
        for name in self.names:
            live, new = self._qualified(name), self._qualified(fresh(name, SUFFIX))
            if self.temporary:
                new = f'"pg_temp".{fresh(name, SUFFIX)}'
                c.execute(f"DROP TABLE IF EXISTS {new}")
                c.execute(f"CREATE TEMP TABLE {fresh(name, SUFFIX)} (LIKE {live}) ON COMMIT DROP")
                continue
            c.execute(f"DROP TABLE IF EXISTS {new}")
            if self.postgres:
                c.execute(
                    f"CREATE TABLE {new} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                )
                self._postgres_indexes(name)
            else:
                self._sqlite_table(name)

    def index_fresh(self, names: Iterable[str]) -> None:
        """PostgreSQL: the live tables' indexes and constraints on these fresh
        tables (SQLite: at the swap; its tables keep their keys from the start)."""
        if self.postgres:
            chosen = set(names)
            for table, ddl, _ in self.indexes:
                if table in chosen:
                    self.cursor.execute(ddl)

    def replace_live(self) -> None:
        """No right to swap: the live tables' rows replaced by the session
        tables', in this transaction (readers see the old rows until it commits)."""
        for name in self.names:
            live = self._qualified(name)
            self.cursor.execute(f"DELETE FROM {live}")
            self.cursor.execute(f'INSERT INTO {live} SELECT * FROM "pg_temp".{fresh(name, SUFFIX)}')

    def analyze(self) -> None:
        if self.postgres and not self.temporary:
            for name in self.names:
                self.cursor.execute(f"ANALYZE {self._qualified(fresh(name, SUFFIX))}")

    def swap(self) -> None:
        c = self.cursor
        if self.postgres:
            self._lock_live()
        for name in self.names:
            c.execute(f"DROP TABLE {self._qualified(name)}")
            c.execute(f"ALTER TABLE {self._qualified(fresh(name, SUFFIX))} RENAME TO {name}")
        for _, ddl, rename in self.indexes:
            if rename is not None:
                c.execute(rename)
            else:  # SQLite renames no index: created now, on the renamed table, as before
                c.execute(ddl)

    def _lock_live(self) -> None:
        """All the live tables, at once, before the first DROP: a reader's query
        locks its tables one by one, so one holding a table that the swap
        wants while waiting for one the swap holds would deadlock it. The
        attempt gives up its locks after LOCK_WAIT and tries again, so such a
        reader waits that long at most."""
        c = self.cursor
        tables = ", ".join(self._qualified(name) for name in self.names)
        c.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_MS}ms'")
        for attempt in itertools.count(1):
            c.execute("SAVEPOINT dateline_swap")
            try:
                c.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
            except psycopg.errors.LockNotAvailable:
                c.execute("ROLLBACK TO SAVEPOINT dateline_swap")
                if attempt >= LOCK_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, LOCK_WAIT_MS / 1000))
                continue
            c.execute("RELEASE SAVEPOINT dateline_swap")
            c.execute("SET LOCAL lock_timeout = 0")
            return

    def _qualified(self, name: str) -> str:
        return f'"{self.schema}".{name}' if self.postgres else name

    def _postgres_indexes(self, name: str) -> None:
        c = self.cursor
        live, new = self._qualified(name), self._qualified(fresh(name, SUFFIX))
        c.execute(
            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname",
            (live,),
        )
        for row in c.fetchall():
            constraint = row["conname"]
            self.indexes.append(
                (
                    name,
                    f'ALTER TABLE {new} ADD CONSTRAINT "{constraint}{SUFFIX}" {row["definition"]}',
                    f'ALTER TABLE {live} RENAME CONSTRAINT "{constraint}{SUFFIX}" '
                    f'TO "{constraint}"',
                )
            )
        c.execute(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) AS definition "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) ORDER BY i.relname",
            (live,),
        )
        for row in c.fetchall():
            index = row["relname"]
            match = re.fullmatch(r"CREATE (UNIQUE )?INDEX \S+ ON \S+ (USING .*)", row["definition"])
            if match is None:
                raise RuntimeError(f"cannot re-create index {index}: {row['definition']}")
            unique, rest = match.group(1) or "", match.group(2)
            self.indexes.append(
                (
                    name,
                    f'CREATE {unique}INDEX "{index}{SUFFIX}" ON {new} {rest}',
                    f'ALTER INDEX "{self.schema}"."{index}{SUFFIX}" RENAME TO "{index}"',
                )
            )

    def _sqlite_table(self, name: str) -> None:
        c = self.cursor
        c.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
            "ORDER BY type = 'index', name",
            (name,),
        )
        for row in c.fetchall():
            if row["type"] == "table":
                ddl = re.sub(
                    rf"^CREATE TABLE\s+\"?{name}\"?",
                    f"CREATE TABLE {fresh(name, SUFFIX)}",
                    row["sql"],
                )
                c.execute(ddl)
            elif row["type"] == "index":
                self.indexes.append((name, row["sql"], None))
