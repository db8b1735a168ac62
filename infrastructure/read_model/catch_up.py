"""Bringing the read model up to the log: at start-up after an upgrade, and rebuilds.

Appends project their own rows inline (see `projection`), so in normal running
there is nothing to catch up. Events written without their rows (by an older
version, or while a city was degraded) are applied here in notification order,
in batches whose rows and new position commit together under a lock taken on
the tracking row (PostgreSQL: FOR UPDATE; SQLite: BEGIN IMMEDIATE), so each
event is applied exactly once; one projected inline meanwhile is skipped.

An event the read model cannot apply (undecodable, or its rows refused by a
constraint) marks its city degraded, with the event and the reason, and the
catch-up goes on with every other city: the process starts, other cities stay
readable and writable, and a rebuild repairs it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from dateline.domain.city import City
from dateline.infrastructure.progress import Progress
from dateline.infrastructure.read_model.projection import Projector, Rows, refusal_reason
from dateline.infrastructure.read_model.queries import ReadModel
from dateline.infrastructure.read_model.rebuild import Rebuild
from dateline.infrastructure.read_model.tables import (
    PROJECTION,
    PostgresDialect,
    PostgresTableWriter,
    TableWriter,
)

BATCH_SIZE = 500


class CatchUp:
    """Applies to the read model what the log holds beyond its position."""

    def __init__(self, app: Application[UUID], read_model: ReadModel) -> None:
        self.app = app
        self.read_model = read_model
        dialect = read_model.dialect
        self.tables: TableWriter = (
            PostgresTableWriter(dialect)
            if isinstance(dialect, PostgresDialect)
            else TableWriter(dialect)
        )
        self._degraded_ids = dialect.sql("SELECT city_id FROM {degraded}")

    def catch_up(self) -> int:
        """Apply every event recorded after the position; returns how many."""
        applied = 0
        if self.read_model.position() >= (self.app.recorder.max_notification_id() or 0):
            return 0
        while True:
            with self._write() as cursor:
                position = self._locked_position(cursor)
                batch = self._after(position)
                if not batch:
                    return applied
                degraded = self._degraded(cursor)
                fresh = [n for n in batch if not self._projected(cursor, n)]
                projected, outcome = self._project(fresh, {}, degraded)
                written = self._write_each(cursor, projected, outcome)
                self._mark(cursor, outcome.failures)
                count = sum(r.events for r in written)
                cursor.execute(self.tables.set_position, (batch[-1].id, count, PROJECTION))
            applied += count
            if len(batch) < BATCH_SIZE:
                return applied

    def rebuild(self, progress: Progress | None = None) -> int:
        """The read model again from the whole log, set-based (`rebuild`): readers
        see the old answers until the new ones are complete; appends wait only
        for the final phase. Returns the events applied.

        `progress`, if given, is told the events applied by each fetch, with the
        log's head (its highest notification id) as the total."""
        return Rebuild(self).run(progress)

    # -------------------------------------------------------------- internals
    def _project(
        self, batch: Sequence[Notification], cities: dict[UUID, City], degraded: set[UUID]
    ) -> tuple[list[tuple[UUID, str, Rows]], _Outcome]:
        outcome = _Outcome()
        projectors: dict[UUID, Projector] = {}
        slugs: dict[UUID, str] = {}
        for notification in batch:
            cid = notification.originator_id
            assert isinstance(cid, UUID)
            if cid in degraded:
                continue
            city = cities.get(cid)
            try:
                event: Any = self.app.mapper.to_domain_event(notification)
                if city is None and event.originator_version > 1:
                    city = self.app.repository.get(cid, version=event.originator_version - 1)
                    assert isinstance(city, City)
                    city.intervals()  # derive them, so each event's change is known
                city = event.mutate(city)
                assert isinstance(city, City)
                changes = city.take_interval_changes()
                projectors.setdefault(cid, Projector()).add(
                    city.slug, event, changes.get(event.originator_version)
                )
                cities[cid] = city
                slugs[cid] = city.slug
            except Exception as error:  # contained: this city only
                slug = city.slug if city is not None else cid.hex
                outcome.failures.append(
                    (cid, slug, f"{slug}-{notification.originator_version}", refusal_reason(error))
                )
                degraded.add(cid)
                projectors.pop(cid, None)
                cities.pop(cid, None)
        return [(cid, slugs[cid], p.rows) for cid, p in projectors.items()], outcome

    def _write_each(
        self,
        cursor: Any,
        rows: list[tuple[UUID, str, Rows]],
        outcome: _Outcome,
    ) -> list[Rows]:
        """Write each city's rows under a savepoint: rows the tables refuse
        degrade that city only. Returns the rows written."""
        written = []
        for cid, slug, projected in rows:
            cursor.execute("SAVEPOINT dateline_city")
            try:
                self.tables.write(cursor, projected)
            except Exception as error:
                cursor.execute("ROLLBACK TO SAVEPOINT dateline_city")
                first = min(projected.facts, key=lambda key: key[1], default=(cid, 0))
                outcome.failures.append((cid, slug, f"{slug}-{first[1]}", refusal_reason(error)))
                continue
            cursor.execute("RELEASE SAVEPOINT dateline_city")
            written.append(projected)
        return written

    def _mark(self, cursor: Any, failures: list[tuple[UUID, str, str, str]]) -> None:
        now = datetime.now().astimezone()
        for cid, slug, event_id, reason in failures:
            cursor.execute(
                self.tables.insert_degraded,
                self.tables.degraded_row(cid, slug, event_id, reason, now),
            )

    def _degraded(self, cursor: Any) -> set[UUID]:
        cursor.execute(self._degraded_ids)
        return {self.read_model.dialect.load_uid(row["city_id"]) for row in cursor.fetchall()}

    def _projected(self, cursor: Any, notification: Notification) -> bool:
        cid = notification.originator_id
        assert isinstance(cid, UUID)
        d = self.read_model.dialect
        cursor.execute(self.tables.select_projected, (d.uid(cid), notification.originator_version))
        return cursor.fetchone() is not None

    def _after(self, position: int) -> Sequence[Notification]:
        return self.app.recorder.select_notifications(
            start=position, limit=BATCH_SIZE, inclusive_of_start=False
        )

    def _locked_position(self, cursor: Any) -> int:
        cursor.execute(self.tables.lock_position, (PROJECTION,))
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError(
                f"the read model has no {PROJECTION!r} tracking row: run `dateline migrate`"
            )
        return int(row["notification_id"])

    @contextmanager
    def _write(self) -> Iterator[Any]:
        datastore = self.read_model.datastore
        if isinstance(datastore, PostgresDatastore):
            with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
                # The transaction reads the log and aggregates on other connections
                # between its statements; the library's 5 s idle limit is too tight.
                cursor.execute("SET LOCAL idle_in_transaction_session_timeout = '600s'")
                yield cursor
            return
        assert isinstance(datastore, SQLiteDatastore)
        # A connection of our own, not the pool's writer: reading the log through
        # the pool while holding its writer could wait behind the writer thread.
        pool = datastore.pool
        lite = sqlite3.connect(
            pool.db_name,
            uri=True,
            isolation_level=None,
            timeout=pool.lock_timeout or 5,
            check_same_thread=False,
        )
        lite.row_factory = sqlite3.Row
        try:
            lite.execute("BEGIN IMMEDIATE")
            try:
                yield lite.cursor()
            except BaseException:
                lite.rollback()
                raise
            lite.commit()
        finally:
            lite.close()


class _Outcome:
    def __init__(self) -> None:
        self.failures: list[tuple[UUID, str, str, str]] = []
