"""The eventsourcing library's own persistence conformance cases, on Dateline's store.

`eventsourcing.tests.persistence` holds the cases the library runs against its
own recorders; they define what the library relies on from a recorder (atomic
appends, IntegrityError on a conflict, contiguous notification ids that never
interleave, tracking positions). Here they run against the recorders the
application's own configuration yields (`library_env`: PERSISTENCE_MODULE,
APPLICATION_RECORDER_TOPIC, CREATE_TABLE=false), on the tables Dateline's alembic
migrations make: a fresh SQLite file, or a fresh PostgreSQL schema dropped after
each test. The library never creates a table here, and every test checks that.

Which classes are expected lives in one place, `dateline_classes()`: if the
recorders are renamed or the factory changes, only that function changes.
"""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from threading import Event, Thread
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
    PostgresAggregateRecorder,
    PostgresFactory,
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteFactory,
    SQLiteProcessRecorder,
    SQLiteTrackingRecorder,
)
from eventsourcing.utils import Environment

from infrastructure import migrations
from infrastructure.application import Dateline, library_env
from infrastructure.recorders import PostgresIndexedRecorder, SQLiteIndexedRecorder
from infrastructure.settings import Settings, StoreConfig
from tests.conftest import POSTGRES_URL, drop_schema, require_postgres

# Sizes for the concurrency cases below; the library's own sizes (10 writers x
# 100 appends x 100 events; 2 x 1,000 events) take minutes on this shared store.
WRITERS = 4
APPENDS_PER_WRITER = 10
EVENTS_PER_APPEND = 20
NON_INTERLEAVING_EVENTS = 200


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
            factory=SQLiteFactory,
            application=SQLiteIndexedRecorder,
            snapshots=SQLiteAggregateRecorder,
            tracking=SQLiteTrackingRecorder,
            process=SQLiteProcessRecorder,
        )
    return RecorderClasses(
        factory=PostgresFactory,
        application=PostgresIndexedRecorder,
        snapshots=PostgresAggregateRecorder,
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
    else:
        recorder, expected = factory.tracking_recorder(), classes.tracking
    assert type(recorder) is expected, f"{role} recorder is {type(recorder)}, not {expected}"
    return recorder


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


class WithDatelineRecorder(OnDatelineStore):
    role: ClassVar[str]

    def setUp(self) -> None:
        super().setUp()
        self.factory = InfrastructureFactory.construct(self.env)
        self.addCleanup(self.factory.close)  # type: ignore[attr-defined]

    def create_recorder(self) -> Any:
        return build_recorder(self.factory, self.kind, self.role)


class SmallConcurrencyCases:
    """Overrides of the library's concurrency cases, at a size that runs in seconds."""

    create_recorder: Any
    new_originator_id: Any
    assertEqual: Any  # noqa: N815

    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None:
        """The library's version writes 10 writers x 100 appends x 100 events while
        two readers page through notifications, and asserts only that nothing
        raised; that takes minutes here. Same shape, smaller, and it also checks
        that every event landed once, with distinct contiguous notification ids."""
        recorder = self.create_recorder()
        stop = Event()
        errors: list[Exception] = []

        def read() -> None:
            while not stop.is_set():
                try:
                    recorder.select_notifications(start=initial_position, limit=10)
                except Exception as error:  # collected and re-raised below
                    errors.append(error)
                    return

        def append(_: int) -> None:
            originator_id = self.new_originator_id()
            recorder.insert_events(
                [
                    StoredEvent(originator_id, version, "topic", b"state")
                    for version in range(1, EVENTS_PER_APPEND + 1)
                ]
            )

        readers = [Thread(target=read) for _ in range(2)]
        for reader in readers:
            reader.start()
        try:
            with ThreadPoolExecutor(max_workers=WRITERS) as pool:
                list(pool.map(append, range(WRITERS * APPENDS_PER_WRITER)))
        finally:
            stop.set()
            for reader in readers:
                reader.join()
        if errors:
            raise errors[0]
        total = WRITERS * APPENDS_PER_WRITER * EVENTS_PER_APPEND
        ids = [n.id for n in recorder.select_notifications(start=None, limit=total + 1)]
        self.assertEqual(ids, list(range(1, total + 1)))


class SmallNonInterleavingCase:
    create_recorder: Any
    assertEqual: Any  # noqa: N815

    def create_stack(self, originator_id: Any) -> Sequence[StoredEvent]:
        """The library's stacks hold 1,000 events each; the race is the same with fewer."""
        return [
            StoredEvent(originator_id, version, "non-interleaving", b"{}")
            for version in range(1, NON_INTERLEAVING_EVENTS + 1)
        ]


# SQLite ------------------------------------------------------------------------------


class TestSQLiteApplicationRecorder(
    WithDatelineRecorder, SmallConcurrencyCases, conformance.ApplicationRecorderTestCase
):
    kind, role = "sqlite", "application"


class TestSQLiteSnapshotRecorder(WithDatelineRecorder, conformance.AggregateRecorderTestCase):
    kind, role = "sqlite", "snapshots"


class TestSQLiteTrackingRecorder(WithDatelineRecorder, conformance.TrackingRecorderTestCase):
    kind, role = "sqlite", "tracking"


class TestSQLiteNonInterleavingNotificationIDs(
    WithDatelineRecorder,
    SmallNonInterleavingCase,
    conformance.NonInterleavingNotificationIDsBaseCase,
):
    kind, role = "sqlite", "application"
    insert_num = NON_INTERLEAVING_EVENTS


class SQLiteTrackingSubclass(dateline_classes("sqlite").tracking):  # type: ignore[misc]
    pass


class TestSQLiteInfrastructureFactory(OnDatelineStore, conformance.InfrastructureFactoryTestCase):
    kind = "sqlite"

    def expected_factory_class(self) -> Any:
        return dateline_classes(self.kind).factory

    def expected_aggregate_recorder_class(self) -> Any:
        return dateline_classes(self.kind).snapshots

    def expected_application_recorder_class(self) -> Any:
        return dateline_classes(self.kind).application

    def expected_tracking_recorder_class(self) -> Any:
        return dateline_classes(self.kind).tracking

    def tracking_recorder_subclass(self) -> Any:
        return SQLiteTrackingSubclass

    def expected_process_recorder_class(self) -> Any:
        return dateline_classes(self.kind).process


# PostgreSQL --------------------------------------------------------------------------


class TestPostgresApplicationRecorder(
    WithDatelineRecorder, SmallConcurrencyCases, conformance.ApplicationRecorderTestCase
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
    SmallNonInterleavingCase,
    conformance.NonInterleavingNotificationIDsBaseCase,
):
    kind, role = "postgresql", "application"
    insert_num = NON_INTERLEAVING_EVENTS


class PostgresTrackingSubclass(dateline_classes("postgresql").tracking):  # type: ignore[misc]
    pass


class TestPostgresInfrastructureFactory(
    OnDatelineStore, conformance.InfrastructureFactoryTestCase
):
    kind = "postgresql"

    def expected_factory_class(self) -> Any:
        return dateline_classes(self.kind).factory

    def expected_aggregate_recorder_class(self) -> Any:
        return dateline_classes(self.kind).snapshots

    def expected_application_recorder_class(self) -> Any:
        return dateline_classes(self.kind).application

    def expected_tracking_recorder_class(self) -> Any:
        return dateline_classes(self.kind).tracking

    def tracking_recorder_subclass(self) -> Any:
        return PostgresTrackingSubclass

    def expected_process_recorder_class(self) -> Any:
        return dateline_classes(self.kind).process

