"""The eventsourcing Application: the store, the write path, and the queries over the log.

One class for both stores. Writes go through the process's writer thread
(`infrastructure.writer`), which decides them on cached aggregates and commits
them in groups; each append's transaction also writes its index rows and its
read-model rows (inline projection), so an acknowledged write is visible at
once. At start-up the read model catches up with whatever the log holds beyond
its position (events written by an older version), city by city, containing
any event it cannot apply.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import JSONTranscoder, StoredEvent, Transcoding
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import Environment
from psycopg_pool import ConnectionPool

from dateline.domain.city import City, ReportOutcome, city_id
from dateline.domain.control import UNKNOWN, ControlInterval, EventType, Source
from dateline.domain.errors import CityAlreadyExists, CityNotFound, VersionMismatch
from dateline.domain.log import LoggedEvent, read_log
from dateline.infrastructure import migrations
from dateline.infrastructure.read_model.catch_up import CatchUp
from dateline.infrastructure.read_model.check import Difference, check
from dateline.infrastructure.read_model.projection import Projector
from dateline.infrastructure.read_model.queries import ReadModel
from dateline.infrastructure.read_model.tables import TABLES
from dateline.infrastructure.recorders import (
    INDEX_KWARG,
    ROWS_KWARG,
    SNAPSHOTS_KWARG,
    IndexRow,
    PostgresIndexedRecorder,
    SQLiteIndexedRecorder,
)
from dateline.infrastructure.settings import Settings, StoreConfig
from dateline.infrastructure.views import AppendResult, CityView, StatusView, city_view
from dateline.infrastructure.writer import CityWriter, ConcurrencyConflict, StoreUnavailable

__all__ = [
    "AppendResult",
    "CityView",
    "ConcurrencyConflict",
    "Dateline",
    "StatusView",
    "StoreNotMigrated",
    "StoreUnavailable",
]

log = logging.getLogger("dateline.application")

Clock = Callable[[], datetime]
DEGRADED_KWARG = "degraded"


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreNotMigrated(Exception):
    def __init__(self, store: StoreConfig, current: str | None, head: str | None) -> None:
        super().__init__(
            f"{store.describe()} is at migration {current or 'none'}, not {head}: "
            "run `dateline migrate` first"
        )


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def library_env(store: StoreConfig, settings: Settings) -> dict[str, str]:
    env = {"CREATE_TABLE": "false", "IS_SNAPSHOTTING_ENABLED": "y"}
    env["MAPPER_TOPIC"] = (
        "dateline.infrastructure.audit.damage:NamingMapper"  # names an event that does not decode
    )
    if store.kind == "sqlite":
        return env | {
            "PERSISTENCE_MODULE": "dateline.infrastructure.recorders:DatelineSQLiteFactory",
            "SQLITE_DBNAME": str(store.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    return env | {
        "PERSISTENCE_MODULE": "dateline.infrastructure.recorders:DatelinePostgresFactory",
        "POSTGRES_HOST": store.host,
        "POSTGRES_PORT": str(store.port),
        "POSTGRES_USER": store.user,
        "POSTGRES_PASSWORD": store.password,
        "POSTGRES_DBNAME": store.dbname,
        "POSTGRES_SCHEMA": store.schema,
        "POSTGRES_LOCK_TIMEOUT": str(settings.postgres_lock_timeout),
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_max_overflow),
        # The wait for a pooled connection: during an outage, the time to a 503.
        "POSTGRES_CONNECT_TIMEOUT": str(max(1, round(settings.postgres_connect_timeout))),
        "POSTGRES_PRE_PING": "y",  # a connection the server dropped is replaced, not used
    }


class Dateline(Application[UUID]):
    name = "Dateline"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock = utc_now,
        migrate: bool | None = None,
    ) -> None:
        """Open the store. SQLite is migrated on open (it is embedded); PostgreSQL
        must already be at the head revision (`dateline migrate`), unless `migrate`."""
        self.settings = settings or Settings()
        self.store = self.settings.store()
        self.clock = clock
        if migrate if migrate is not None else self.store.kind == "sqlite":
            migrations.upgrade(self.store)
        else:
            self._check_migrated()
        self.snapshotting_intervals = {City: self.settings.snapshot_interval}  # type: ignore[misc]
        self.snapshotting_projectors = {City: apply_events}  # type: ignore[misc]
        super().__init__(env=library_env(self.store, self.settings))
        self._fail_fast()
        self.read_model = ReadModel(self.indexed.datastore, clock)
        self.projection = CatchUp(self, self.read_model)
        self.projection.catch_up()  # what an older version wrote without its rows
        self.writer = CityWriter(
            self,
            batch_size=self.settings.writer_batch_size,
            cache_size=self.settings.city_cache_size,
            attempts=self.settings.append_attempts,
        )

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Settings are the only source of configuration: stray POSTGRES_* or
        # CIPHER_* variables in the process environment must not leak in.
        return Environment(name, dict(env or {}))

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def close(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.close()
        super().close()

    @property
    def indexed(self) -> SQLiteIndexedRecorder | PostgresIndexedRecorder:
        recorder = self.recorder
        assert isinstance(recorder, (SQLiteIndexedRecorder, PostgresIndexedRecorder))
        return recorder

    # ------------------------------------------------------------- recording
    def save_decided(self, cities: list[City], degraded: dict[UUID, str]) -> None:
        """Save cities decided by the writer: one transaction for all of them;
        cities in `degraded` get no read-model rows, only their mark."""
        self.save(*cities, **{DEGRADED_KWARG: degraded})

    def _record(self, processing_event: ProcessingEvent[UUID]) -> Any:
        """Add, to the library's append, each event's index row and read-model rows."""
        degraded: dict[UUID, str] = processing_event.saved_kwargs.pop(DEGRADED_KWARG, None) or {}
        projector = Projector()
        changes = {
            cid: city.take_interval_changes() if isinstance(city, City) else {}
            for cid, city in processing_event.aggregates.items()
        }
        index: list[IndexRow] = []
        for e in processing_event.events:
            cid = e.originator_id
            slug: str = getattr(processing_event.aggregates[cid], "slug", "")
            index.append(
                IndexRow(
                    city_id=cid,
                    version=e.originator_version,
                    slug=slug,
                    event_type=type(e).__name__,
                    recorded_at=getattr(e, "timestamp"),  # noqa: B009 - not on the protocol
                    occurred_on=getattr(e, "occurred_on", None),
                    report_id=getattr(e, "report_id", None),
                )
            )
            if cid in degraded:
                projector.skip(slug, e, degraded[cid])
            else:
                projector.add(slug, e, changes[cid].get(e.originator_version))
        processing_event.saved_kwargs[INDEX_KWARG] = index
        processing_event.saved_kwargs[ROWS_KWARG] = projector.rows
        processing_event.saved_kwargs[SNAPSHOTS_KWARG] = self._snapshots(processing_event)
        return super()._record(processing_event)

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Nothing: snapshots are written in the append's own transaction (`_record`)."""

    def _snapshots(self, processing_event: ProcessingEvent[UUID]) -> list[StoredEvent]:
        """A snapshot of each saved city, from memory (no reload), when its new
        events cross a multiple of its interval: stored with the events, in the
        same transaction, so a snapshot costs no commit of its own."""
        if self.snapshots is None:
            return []
        latest: dict[UUID, int] = {}
        crossed: set[UUID] = set()
        base = self.settings.snapshot_interval
        for e in processing_event.events:
            latest[e.originator_id] = e.originator_version
            if e.originator_version % snapshot_interval(base, e.originator_version) == 0:
                crossed.add(e.originator_id)
        taken = []
        for cid in crossed:
            city = processing_event.aggregates.get(cid)
            if isinstance(city, City) and city.version == latest[cid]:
                taken.append(self.mapper.to_stored_event(City.Snapshot.take(city)))
        return taken

    def read_model_refusal(self, error: BaseException) -> str | None:
        """The read-model table that refused an append's rows, as a reason; None
        if the refusal came from the log itself (a concurrent append)."""
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, psycopg.Error) and cause.diag.table_name in TABLES.values():
                return f"{cause.diag.table_name}: {str(cause).strip().splitlines()[0]}"
            text = str(cause)
            for table in TABLES.values():
                if table + "." in text or f"table {table}" in text:
                    return f"{table}: {text.strip().splitlines()[0]}"
            cause = cause.__cause__
        return None

    # ----------------------------------------------------------------- commands
    def register_city(
        self,
        *,
        slug: str,
        name: str,
        province: str,
        country: str,
        lat: float,
        lon: float,
        population: int | None,
        initial_controller: str,
        tracked_since: date,
    ) -> CityView:
        def decide(city: City | None) -> tuple[City, ReportOutcome]:
            if city is not None:
                raise CityAlreadyExists(slug)
            new = City.register(
                slug=slug,
                name=name,
                province=province,
                country=country,
                lat=lat,
                lon=lon,
                population=population,
                initial_controller=initial_controller,
                tracked_since=tracked_since,
                recorded_at=self.clock(),
            )
            return new, ReportOutcome(f"{slug}-1", created=True)

        try:
            decision = self.writer.submit(slug, city_id(slug), decide)
        except ConcurrencyConflict:
            raise CityAlreadyExists(slug) from None
        return city_view(decision.city)

    def report(
        self,
        slug: str,
        event_type: EventType,
        *,
        occurred_on: date,
        actor: str,
        source: Source,
        reported_by: str,
        note: str | None = None,
        report_id: str | None = None,
        expected_version: int | None = None,
    ) -> AppendResult:
        def decide(city: City) -> ReportOutcome:
            return city.report(
                event_type,
                occurred_on=occurred_on,
                actor=actor,
                source=source,
                reported_by=reported_by,
                recorded_at=self.clock(),
                note=note,
                report_id=report_id,
            )

        return self._write(slug, decide, expected_version)

    def retract(
        self,
        slug: str,
        target_event_id: str,
        *,
        reason: str,
        retracted_by: str,
        expected_version: int | None = None,
    ) -> AppendResult:
        def decide(city: City) -> ReportOutcome:
            city.retract(
                target_event_id,
                reason=reason,
                retracted_by=retracted_by,
                recorded_at=self.clock(),
            )
            return ReportOutcome(f"{city.slug}-{city.version}", created=True)

        return self._write(slug, decide, expected_version)

    def _write(
        self,
        slug: str,
        decide: Callable[[City], ReportOutcome],
        expected_version: int | None,
    ) -> AppendResult:
        def command(city: City | None) -> tuple[City, ReportOutcome]:
            if city is None:
                raise CityNotFound(slug)
            if expected_version is not None and city.version != expected_version:
                raise VersionMismatch(slug, expected_version, city.version)
            return city, decide(city)

        decision = self.writer.submit(slug, city_id(slug), command)
        event = decision.event
        if event is None:  # a repeat: the original, as stored
            event = self._logged_event(slug, decision.outcome.event_id)
        return AppendResult(event, decision.outcome.created, decision.version)

    def import_cities(self, cities: list[City], batch_size: int = 64) -> int:
        """Save already-decided cities, many per transaction; returns events written.

        For bulk loads by a single writer (the seed loader): a conflict here means
        someone else wrote meanwhile, and the whole batch is rolled back."""
        written = 0
        for start in range(0, len(cities), batch_size):
            batch = cities[start : start + batch_size]
            recordings = self.save(*batch)
            for city in batch:
                self.writer.forget(city.id)
            written += len(recordings)
        return written

    def find_city(self, slug: str) -> City | None:
        """The current aggregate, for callers that decide many changes at once."""
        return self.load_city(city_id(slug))

    def load_city(self, cid: UUID) -> City | None:
        try:
            city: Any = self.repository.get(cid, projector_func=apply_events)
        except AggregateNotFoundError:
            return None
        assert isinstance(city, City)
        return city

    # ------------------------------------------------------------------ queries
    def city(self, slug: str) -> CityView:
        return city_view(self._city(slug))

    def status(
        self, slug: str, as_of: date | None = None, known_at: datetime | None = None
    ) -> StatusView:
        city = self._city_known_at(slug, known_at)
        moment = known_at or self.clock()
        on = as_of or moment.date()
        if city is None:  # registered after `known_at`: the record knew nothing yet
            return StatusView(city_view(self._city(slug)), on, moment, UNKNOWN, 0)
        return StatusView(city_view(city), on, moment, city.status_on(on), city.version)

    def timeline(
        self, slug: str, known_at: datetime | None = None
    ) -> tuple[CityView, list[ControlInterval]]:
        city = self._city_known_at(slug, known_at)
        if city is None:
            return city_view(self._city(slug)), []
        return city_view(city), city.intervals()

    def history(self, slug: str, known_at: datetime | None = None) -> list[LoggedEvent]:
        """The city's log in recording order, as it stood at `known_at`."""
        cid = city_id(slug)
        version = self._version_known_at(slug, known_at) if known_at else None
        if version == 0:
            return []
        events = list(self.events.get(cid, lte=version))
        if not events:
            raise CityNotFound(slug)
        return read_log(slug, events)

    def version_known_at(self, slug: str, known_at: datetime) -> int | None:
        return self.indexed.version_known_at(city_id(slug), known_at)

    def city_slugs(self) -> list[str]:
        return self.indexed.city_slugs()

    def check_read_model(self, samples: int = 200, seed: int = 0) -> tuple[list[Difference], int]:
        """Compare the read model with the aggregate fold on every city."""
        return check(self, self.read_model, samples, seed)

    def count_events(self) -> int:
        """The events the read model reflects: one row read, not a count."""
        return self.read_model.progress()[1]

    # -------------------------------------------------------------- internals
    def _city(self, slug: str, version: int | None = None) -> City:
        try:
            city: Any = self.repository.get(
                city_id(slug), version=version, projector_func=apply_events
            )
        except AggregateNotFoundError:
            raise CityNotFound(slug) from None
        assert isinstance(city, City)
        return city

    def _version_known_at(self, slug: str, known_at: datetime) -> int:
        """The city's last version recorded at or before `known_at`; 0 if it was
        registered later. Raises CityNotFound if it was never registered."""
        version = self.version_known_at(slug, known_at)
        if version is None:
            self._city(slug)
            return 0
        return version

    def _city_known_at(self, slug: str, known_at: datetime | None) -> City | None:
        """The city as recorded by `known_at`; None (the default, "now") means
        everything recorded so far, whatever the clock says."""
        if known_at is None:
            return self._city(slug)
        version = self._version_known_at(slug, known_at)
        return self._city(slug, version) if version else None

    def _logged_event(self, slug: str, event_id: str) -> LoggedEvent:
        version = int(event_id.rsplit("-", 1)[1])
        events = self.events.get(city_id(slug), gt=version - 1, lte=version)
        return read_log(slug, events)[0]

    def _check_migrated(self) -> None:
        head = migrations.head_revision()
        current = migrations.current_revision(self.store)
        if current != head:
            raise StoreNotMigrated(self.store, current, head)

    def _fail_fast(self) -> None:
        """While PostgreSQL is down, answer within the connect timeout, and
        reconnect as soon as it is back (the pool's default backs off for minutes)."""
        datastore = self.indexed.datastore
        if not isinstance(datastore, PostgresDatastore):
            return
        timeout = self.settings.postgres_connect_timeout
        pool = datastore.pool
        if isinstance(pool.kwargs, dict):
            pool.kwargs["connect_timeout"] = max(1, round(timeout))
        pool.reconnect_timeout = timeout
        if getattr(pool, "_check", None) is not None:  # the pool's pre-ping hook
            pool._check = IdleCheck()


class IdleCheck:
    """The pool's check before lending a connection: ping only one that has not
    been lent for a second (a busy writer's connection is fine; one idle through
    an outage is replaced), sparing a round trip on every busy checkout."""

    IDLE = 1.0

    def __init__(self) -> None:
        self._lent: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def __call__(self, conn: Any) -> None:
        now = time.monotonic()
        last = self._lent.get(conn)
        self._lent[conn] = now
        if last is None or now - last >= self.IDLE:
            ConnectionPool.check_connection(conn)


def snapshot_interval(base: int, version: int) -> int:
    """Every `base` events while a city is small; then doubling, so a snapshot
    (whose size grows with the city) is taken after about a tenth more events:
    its cost per event stays flat, and a cold load replays at most that tenth."""
    interval = base
    while interval * 10 <= version // 2:
        interval *= 2
    return interval


def apply_events(city: Any, events: Iterable[Any]) -> Any:
    """The library's fold without its per-event runtime Protocol isinstance
    assert (~18 us an event, a third of a replay); our events are City's own."""
    for event in events:
        city = event.mutate(city)
    return city
