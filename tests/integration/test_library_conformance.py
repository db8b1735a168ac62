"""The eventsourcing library's own persistence conformance cases, on Dateline's store.

`eventsourcing.tests.persistence` holds the cases the library runs against its
own recorders; they define what the library relies on from a recorder (atomic
appends, IntegrityError on a conflict, contiguous notification ids that never
interleave, tracking positions). Here they run against the recorders the
application's own configuration yields (`library_env`: PERSISTENCE_MODULE,
APPLICATION_RECORDER_TOPIC, CREATE_TABLE=false), on the tables Dateline's alembic
migrations make: a fresh SQLite file, or a fresh PostgreSQL schema dropped after
each test. The library never creates a table here, and every test checks that.

The application-recorder cases run twice: as the library wrote them, and with
every append carrying event-index rows as the application's appends do (then
each test also checks one index row per recorded event).

Which classes are expected lives in one place, `dateline_classes()`: if the
recorders are renamed or the factory changes, only that function changes; the
shape of an index row lives in `index_rows()`.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import eventsourcing.tests.persistence as conformance
import psycopg
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    StoredEvent,
    TrackingRecorder,
)
from eventsourcing.postgres import (
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteProcessRecorder,
    SQLiteTrackingRecorder,
)
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

from dateline.infrastructure import migrations
from dateline.infrastructure.application import Dateline, library_env
from dateline.infrastructure.recorders import (
    INDEX_KWARG,
    INDEX_TABLE,
    DatelinePostgresFactory,
    DatelineSQLiteFactory,
    IndexRow,
    PostgresIndexedRecorder,
    PostgresSnapshotRecorder,
    SQLiteIndexedRecorder,
)
from dateline.infrastructure.settings import Settings, StoreConfig
from tests.conftest import POSTGRES_URL, drop_schema, require_postgres


@dataclass(frozen=True)
class RecorderClasses:
    factory: type[InfrastructureFactory[Any]]
    application: type[ApplicationRecorder]  # the events, with notification ids
    snapshots: type[AggregateRecorder]
    tracking: type[TrackingRecorder]
    process: type[ProcessRecorder]


def dateline_classes(kind: str) -> RecorderClasses:
    """What the application's configuration must yield on each store (the one
    place to change when the recorders or the factory are renamed)."""
    if kind == "sqlite":
        return RecorderClasses(
            factory=DatelineSQLiteFactory,
            application=SQLiteIndexedRecorder,
            snapshots=SQLiteAggregateRecorder,
            tracking=SQLiteTrackingRecorder,
            process=SQLiteProcessRecorder,
        )
    return RecorderClasses(
        factory=DatelinePostgresFactory,
        application=PostgresIndexedRecorder,
        snapshots=PostgresSnapshotRecorder,
        tracking=PostgresTrackingRecorder,
        process=PostgresProcessRecorder,
    )


def dateline_env(store: StoreConfig) -> Environment:
    """The environment the application gives the library for this store."""
    return Environment(Dateline.name, library_env(store, Settings()))


def build_recorder(factory: InfrastructureFactory[Any], kind: str, role: str) -> Any:
    """One of the recorders the application's factory makes, checked to be Dateline's."""
    classes = dateline_classes(kind)
    if role == "application":
        recorder: Any = factory.application_recorder()
        expected: type[Any] = classes.application
    elif role == "snapshots":
        recorder, expected = factory.aggregate_recorder("snapshots"), classes.snapshots
    elif role == "tracking":
        recorder, expected = factory.tracking_recorder(), classes.tracking
    else:
        recorder, expected = factory.process_recorder(), classes.process
    assert type(recorder) is expected, f"{role} recorder is {type(recorder)}, not {expected}"
    return recorder


def index_rows(stored_events: Sequence[StoredEvent]) -> list[IndexRow]:
    """The event-index rows the application passes with an append (one per event)."""
    return [
        IndexRow(
            city_id=uuid.UUID(str(event.originator_id)),
            version=event.originator_version,
            slug=f"city-{event.originator_id}",
            event_type=event.topic,
            recorded_at=datetime.now(UTC),
            occurred_on=None,
            report_id=None,
        )
        for event in stored_events
    ]


def with_index_rows(recorder: Any) -> Any:
    """The recorder, its appends carrying index rows as the application's do, so
    the library's cases also run through the index insert in the append's
    transaction."""
    insert_events = recorder.insert_events

    def insert_with_index(stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        kwargs.setdefault(INDEX_KWARG, index_rows(stored_events))
        return insert_events(stored_events, **kwargs)

    recorder.insert_events = insert_with_index
    return recorder


def row_count(store: StoreConfig, table: str) -> int:
    if store.kind == "sqlite":
        with sqlite3.connect(str(store.sqlite_path)) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    query = SQL("SELECT COUNT(*) FROM {}.{}").format(Identifier(store.schema), Identifier(table))
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute(query).fetchone()
    return 0 if row is None else int(row[0])


def tables(store: StoreConfig) -> set[str]:
    if store.kind == "sqlite":
        with sqlite3.connect(str(store.sqlite_path)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {row[0] for row in rows}
    with psycopg.connect(POSTGRES_URL) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (store.schema,),
        ).fetchall()
    return {row[0] for row in rows}


class OnDatelineStore:
    """A fresh store made by Dateline's migrations, and the application's env for it.

    Mixed in before a library case (it is not a TestCase itself, so pytest does
    not collect it)."""

    kind: ClassVar[str]
    env: Environment
    store: StoreConfig

    def setUp(self) -> None:
        if self.kind == "sqlite":
            folder = tempfile.TemporaryDirectory(prefix="dateline-conformance-")
            self.addCleanup(folder.cleanup)  # type: ignore[attr-defined]
            self.store = StoreConfig("sqlite", sqlite_path=Path(folder.name) / "store.sqlite")
        else:
            require_postgres()
            schema = f"t_{uuid.uuid4().hex[:12]}"
            self.addCleanup(drop_schema, schema)  # type: ignore[attr-defined]
            self.store = StoreConfig.from_url(POSTGRES_URL, schema)
        migrations.upgrade(self.store)
        self.migrated_tables = tables(self.store)
        self.env = dateline_env(self.store)
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        # CREATE_TABLE=false: the library used Dateline's tables and made none.
        assert tables(self.store) == self.migrated_tables


def join_threads_started_since(before: set[threading.Thread]) -> None:
    for thread in threading.enumerate():
        if thread not in before and not thread.daemon and thread is not threading.current_thread():
            thread.join(timeout=30)


class WithDatelineRecorder(OnDatelineStore):
    role: ClassVar[str]

    def setUp(self) -> None:
        super().setUp()
        self.factory = InfrastructureFactory.construct(self.env)
        started_before = set(threading.enumerate())
        self.addCleanup(self.factory.close)  # type: ignore[attr-defined]
        # Cleanups run last-in first-out: this one first. Some library cases stop
        # their reader threads without joining them; closing SQLite's connections
        # under a reader still running crashed the interpreter (a segfault).
        self.addCleanup(join_threads_started_since, started_before)  # type: ignore[attr-defined]

    def create_recorder(self) -> Any:
        return build_recorder(self.factory, self.kind, self.role)


class WithIndexRows(WithDatelineRecorder):
    """Every append carries index rows; after the case, the index holds exactly
    one row per recorded event (a refused append left neither behind)."""

    def create_recorder(self) -> Any:
        self.recorder = with_index_rows(super().create_recorder())
        return self.recorder

    def tearDown(self) -> None:
        super().tearDown()
        events = row_count(self.store, self.recorder.events_table_name)
        indexed = row_count(self.store, INDEX_TABLE)
        assert events > 0
        assert indexed == events, f"{indexed} index rows for {events} events"


class ExpectDatelineClasses(OnDatelineStore):
    """The classes the library's factory case expects from the application's env."""

    tracking_subclass: ClassVar[type[TrackingRecorder]]

    def expected_factory_class(self) -> Any:
        return dateline_classes(self.kind).factory

    def expected_aggregate_recorder_class(self) -> Any:
        return dateline_classes(self.kind).snapshots

    def expected_application_recorder_class(self) -> Any:
        return dateline_classes(self.kind).application

    def expected_tracking_recorder_class(self) -> Any:
        return dateline_classes(self.kind).tracking

    def tracking_recorder_subclass(self) -> Any:
        return self.tracking_subclass

    def expected_process_recorder_class(self) -> Any:
        return dateline_classes(self.kind).process


# SQLite ------------------------------------------------------------------------------


class TestSQLiteApplicationRecorder(WithDatelineRecorder, conformance.ApplicationRecorderTestCase):
    """The library's optional subscription case is not added here: its SQLite
    recorders raise NotImplementedError for subscriptions (Dateline uses none)."""

    kind, role = "sqlite", "application"


class TestSQLiteSnapshotRecorder(WithDatelineRecorder, conformance.AggregateRecorderTestCase):
    kind, role = "sqlite", "snapshots"


class TestSQLiteTrackingRecorder(WithDatelineRecorder, conformance.TrackingRecorderTestCase):
    kind, role = "sqlite", "tracking"


class TestSQLiteNonInterleavingNotificationIDs(
    WithDatelineRecorder,
    conformance.NonInterleavingNotificationIDsBaseCase,
):
    kind, role = "sqlite", "application"


class TestSQLiteProcessRecorder(WithDatelineRecorder, conformance.ProcessRecorderTestCase):
    """Dateline runs no process application, but its migrations make the events and
    tracking tables the library's process recorder writes in one transaction."""

    kind, role = "sqlite", "process"


class TestSQLiteApplicationRecorderWithIndexRows(
    WithIndexRows, conformance.ApplicationRecorderTestCase
):
    kind, role = "sqlite", "application"


class TestSQLiteNonInterleavingWithIndexRows(
    WithIndexRows, conformance.NonInterleavingNotificationIDsBaseCase
):
    kind, role = "sqlite", "application"


class SQLiteTrackingSubclass(dateline_classes("sqlite").tracking):  # type: ignore[misc]
    pass


class TestSQLiteInfrastructureFactory(
    ExpectDatelineClasses, conformance.InfrastructureFactoryTestCase
):
    kind = "sqlite"
    tracking_subclass = SQLiteTrackingSubclass


# PostgreSQL --------------------------------------------------------------------------


class TestPostgresApplicationRecorder(
    WithDatelineRecorder, conformance.ApplicationRecorderTestCase
):
    kind, role = "postgresql", "application"

    def test_insert_subscribe(self) -> None:
        """LISTEN/NOTIFY on the migrated events table (the library runs this one
        only where the recorder supports subscriptions: PostgreSQL)."""
        self.optional_test_insert_subscribe()


class TestPostgresSnapshotRecorder(WithDatelineRecorder, conformance.AggregateRecorderTestCase):
    kind, role = "postgresql", "snapshots"


class TestPostgresTrackingRecorder(WithDatelineRecorder, conformance.TrackingRecorderTestCase):
    kind, role = "postgresql", "tracking"


class TestPostgresNonInterleavingNotificationIDs(
    WithDatelineRecorder,
    conformance.NonInterleavingNotificationIDsBaseCase,
):
    kind, role = "postgresql", "application"


class TestPostgresProcessRecorder(WithDatelineRecorder, conformance.ProcessRecorderTestCase):
    """Dateline runs no process application, but its migrations make the events and
    tracking tables the library's process recorder writes in one transaction."""

    kind, role = "postgresql", "process"


class TestPostgresApplicationRecorderWithIndexRows(
    WithIndexRows, conformance.ApplicationRecorderTestCase
):
    kind, role = "postgresql", "application"


class TestPostgresNonInterleavingWithIndexRows(
    WithIndexRows, conformance.NonInterleavingNotificationIDsBaseCase
):
    kind, role = "postgresql", "application"


class PostgresTrackingSubclass(dateline_classes("postgresql").tracking):  # type: ignore[misc]
    pass


class TestPostgresInfrastructureFactory(
    ExpectDatelineClasses, conformance.InfrastructureFactoryTestCase
):
    kind = "postgresql"
    tracking_subclass = PostgresTrackingSubclass
