"""The eventsourcing Application: commands and queries over city streams.

One class for both stores. Every write reloads the city, lets the aggregate
decide, and saves; a concurrent writer's append makes ours collide on the
(city, version) key or on (city, report_id), so we reload and decide again, a
bounded number of times. Writes to one city are serialised inside the process
to keep those retries rare.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    OperationalError,
    Transcoding,
)
from eventsourcing.utils import Environment

from domain.city import City, ReportOutcome, city_id
from domain.control import UNKNOWN, ControlInterval, ControlState, EventType, Source
from domain.errors import CityAlreadyExists, CityNotFound, VersionMismatch
from domain.log import LoggedEvent, read_log
from infrastructure import migrations
from infrastructure.recorders import (
    INDEX_KWARG,
    IndexRow,
    PostgresIndexedRecorder,
    SQLiteIndexedRecorder,
)
from infrastructure.settings import Settings, StoreConfig

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ConcurrencyConflict(Exception):
    """Other writers kept moving the city on; the append was not made."""

    def __init__(self, slug: str, attempts: int) -> None:
        super().__init__(
            f"{slug} changed {attempts} times while this write was being decided; "
            "nothing was written, try again"
        )
        self.slug = slug


class StoreUnavailable(Exception):
    """The database did not answer in time (lock timeout, connection lost)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the event store is unavailable, nothing was written: {detail}")


class NotYetVisible(Exception):
    """The write committed, but the read model could not reflect it yet.

    Nothing is lost: the next write or restart catches the read model up, and
    repeating the request with the same report_id returns the recorded event."""

    def __init__(self, event_id: str, detail: str) -> None:
        super().__init__(
            f"{event_id} was recorded, but the read model could not reflect it yet ({detail}); "
            "repeat the request with the same report_id to confirm: it will not be written twice"
        )
        self.event_id = event_id


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


@dataclass(frozen=True, slots=True)
class CityView:
    slug: str
    name: str
    province: str
    country: str
    lat: float
    lon: float
    population: int | None
    initial_controller: str
    tracked_since: date


@dataclass(frozen=True, slots=True)
class StatusView:
    city: CityView
    as_of: date
    known_at: datetime
    state: ControlState
    version: int  # the city's version as known at `known_at`


@dataclass(frozen=True, slots=True)
class AppendResult:
    event: LoggedEvent
    created: bool  # False: a repeat of a known report_id, nothing written
    version: int  # the city's version after the append


def library_env(store: StoreConfig, settings: Settings) -> dict[str, str]:
    env = {"CREATE_TABLE": "false", "IS_SNAPSHOTTING_ENABLED": "y"}
    env["MAPPER_TOPIC"] = "infrastructure.audit.damage:NamingMapper"  # issue 9: name damage
    if store.kind == "sqlite":
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(store.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": "infrastructure.recorders:SQLiteIndexedRecorder",
        }
    else:
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_HOST": store.host,
            "POSTGRES_PORT": str(store.port),
            "POSTGRES_USER": store.user,
            "POSTGRES_PASSWORD": store.password,
            "POSTGRES_DBNAME": store.dbname,
            "POSTGRES_SCHEMA": store.schema,
            "POSTGRES_LOCK_TIMEOUT": str(settings.postgres_lock_timeout),
            "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
            "POSTGRES_MAX_OVERFLOW": str(settings.postgres_max_overflow),
            "APPLICATION_RECORDER_TOPIC": "infrastructure.recorders:PostgresIndexedRecorder",
        }
    return env


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
        self._city_locks: dict[UUID, threading.Lock] = {}
        self._city_locks_guard = threading.Lock()
        super().__init__(env=library_env(self.store, self.settings))
        from infrastructure.read_model import ReadModel  # it imports this module

        self.read_model = ReadModel(self)
        self.read_model.catch_up()  # whatever the log holds, e.g. after a crash

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Settings are the only source of configuration: stray POSTGRES_* or
        # CIPHER_* variables in the process environment must not leak in.
        return Environment(name, dict(env or {}))

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def _record(self, processing_event: ProcessingEvent[UUID]) -> Any:
        slugs = {
            cid: getattr(city, "slug", "") for cid, city in processing_event.aggregates.items()
        }
        processing_event.saved_kwargs[INDEX_KWARG] = [
            IndexRow(
                city_id=e.originator_id,
                version=e.originator_version,
                slug=slugs[e.originator_id],
                event_type=type(e).__name__,
                recorded_at=getattr(e, "timestamp"),  # noqa: B009 - not on the protocol
                occurred_on=getattr(e, "occurred_on", None),
                report_id=getattr(e, "report_id", None),
            )
            for e in processing_event.events
        ]
        return super()._record(processing_event)

    @property
    def indexed(self) -> SQLiteIndexedRecorder | PostgresIndexedRecorder:
        recorder = self.recorder
        assert isinstance(recorder, (SQLiteIndexedRecorder, PostgresIndexedRecorder))
        return recorder

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
        city = City.register(
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
        try:
            self.save(city)
        except IntegrityError:
            raise CityAlreadyExists(slug) from None
        self._reflect(f"{slug}-1")  # read-your-writes: reflected before we answer
        return city_view(city)

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
        attempts = self.settings.append_attempts
        with self._city_lock(city_id(slug)):
            for attempt in range(attempts):
                city = self._city(slug)
                if expected_version is not None and city.version != expected_version:
                    raise VersionMismatch(slug, expected_version, city.version)
                outcome = decide(city)
                if outcome.created:
                    try:
                        self.save(city)
                    except IntegrityError:
                        # Another process appended first (or stored the same report):
                        # reload and decide again against what it wrote.
                        time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                        continue
                    except OperationalError as error:  # the library already retried it
                        raise StoreUnavailable(str(error).splitlines()[0]) from error
                self._reflect(outcome.event_id)  # also for a repeat: its original may lag
                logged = self._logged_event(city, outcome.event_id)
                return AppendResult(logged, outcome.created, city.version)
        raise ConcurrencyConflict(slug, attempts)

    def _reflect(self, event_id: str) -> None:
        """Bring the read model up to the log before answering a write."""
        try:
            self.read_model.catch_up()
        except Exception as error:  # any failure here must not read as a failed write
            raise NotYetVisible(event_id, str(error).splitlines()[0]) from error

    @contextmanager
    def _city_lock(self, cid: UUID) -> Iterator[None]:
        with self._city_locks_guard:
            lock = self._city_locks.setdefault(cid, threading.Lock())
        with lock:
            yield

    def import_cities(self, cities: list[City], batch_size: int = 64) -> int:
        """Save already-decided cities, many per transaction; returns events written.

        For bulk loads by a single writer (the seed loader): a conflict here means
        someone else wrote meanwhile, and the whole batch is rolled back."""
        written = 0
        for start in range(0, len(cities), batch_size):
            batch = cities[start : start + batch_size]
            recordings = self.save(*batch)
            self.read_model.catch_up()
            written += len(recordings)
        return written

    def find_city(self, slug: str) -> City | None:
        """The current aggregate, for callers that decide many changes at once."""
        try:
            return self._city(slug)
        except CityNotFound:
            return None

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

    def city_slugs(self) -> list[str]:
        return self.indexed.city_slugs()

    def count_events(self) -> int:
        return self.indexed.count_events()

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
        version = self.indexed.version_known_at(city_id(slug), known_at)
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

    def _logged_event(self, city: City, event_id: str) -> LoggedEvent:
        version = int(event_id.rsplit("-", 1)[1])
        events = self.events.get(city.id, gt=version - 1, lte=version)
        return read_log(city.slug, events)[0]

    def _check_migrated(self) -> None:
        head = migrations.head_revision()
        current = migrations.current_revision(self.store)
        if current != head:
            raise StoreNotMigrated(self.store, current, head)


def apply_events(city: Any, events: Iterable[Any]) -> Any:
    """The library's fold without its per-event runtime Protocol isinstance
    assert (~18 us an event, a third of a replay); our events are City's own."""
    for event in events:
        city = event.mutate(city)
    return city


def city_view(city: City) -> CityView:
    return CityView(
        city.slug,
        city.name,
        city.province,
        city.country,
        city.lat,
        city.lon,
        city.population,
        city.initial_controller,
        city.tracked_since,
    )
