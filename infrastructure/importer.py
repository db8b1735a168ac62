"""`dateline import`: an archive of control events (the seed format) into the store.

Two CSV files, as in `seeds/`: the cities (slug, name, province, lat, lon,
population, initial_controller, tracked_since; optional country) and the control
events (city, event_type, occurred_on, actor, source_url, note; optional
report_id, reported_by, source_name, source_quote; other columns are ignored).

1. Decide: every row is decided, in file order, on in-memory City aggregates
   with the domain's own rules (cities already in the store are loaded and
   extended). A refused row is collected with its file, line, the field or rule
   it breaks and the event it conflicts with; the others go on being decided.
2. Write, only if no row was refused (and not a dry run): the new events of
   whole cities, about BATCH_EVENTS a transaction. Each batch writes what an
   append of the same events would write in its transaction: the events, their
   index rows, their hash-log entries (in notification order), the read model's
   rows and position, and the snapshots the append would take. On PostgreSQL
   under the library's table lock, by COPY; on SQLite through the recorder's
   own append, one BEGIN IMMEDIATE a batch.

Every row has a report_id (given, or derived as the seed loader always has:
`seed:{slug}:{occurred_on}:{event_type}`), so importing the same file again
writes nothing, and an import cut short (a crash, a conflict with a live
writer) is completed by running it again.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from eventsourcing.persistence import PersistenceError, StoredEvent
from psycopg.sql import SQL, Identifier

from dateline.domain.city import City
from dateline.domain.control import EventType, Source
from dateline.domain.errors import ControlRuleViolation, DomainError, InvalidReport
from dateline.infrastructure.application import Dateline, snapshot_interval
from dateline.infrastructure.audit.bulk import postgres_copy_entries
from dateline.infrastructure.progress import Progress
from dateline.infrastructure.read_model.bulk import bulk_writer
from dateline.infrastructure.read_model.projection import Projector, Rows
from dateline.infrastructure.read_model.tables import PROJECTION
from dateline.infrastructure.recorders import (
    INDEX_KWARG,
    INDEX_TABLE,
    ROWS_KWARG,
    SNAPSHOTS_KWARG,
    IndexRow,
    PostgresIndexedRecorder,
    SQLiteIndexedRecorder,
    immediate_transaction,
)

BATCH_EVENTS = 50_000  # events per transaction (whole cities): bounds the lock's hold
DEFAULT_COUNTRY = "Afghanistan"  # the seed format has no country column
DEFAULT_REPORTER = "import"
CITY_COLUMNS = (
    "slug",
    "name",
    "province",
    "lat",
    "lon",
    "population",
    "initial_controller",
    "tracked_since",
)
EVENT_COLUMNS = ("city", "event_type", "occurred_on", "actor", "source_url")
INDEX_COLUMNS = "city_id, version, slug, event_type, recorded_at, occurred_on, report_id"
INDEX_TYPES = ["uuid", "int8", "text", "text", "timestamptz", "date", "text"]
EVENT_TYPES = ["uuid", "int8", "text", "bytea", "int8"]


class ImportFileError(Exception):
    """The files cannot be read as the format says (missing file or column): a usage error."""


@dataclass(frozen=True, slots=True)
class Refusal:
    file: str
    line: int
    field: str  # the field, or `rule <name>` for a rule of control
    message: str
    conflicting_event: str | None = None
    conflicting_line: int | None = None  # the row of this import that recorded it

    def describe(self) -> str:
        conflict = ""
        if self.conflicting_event:
            conflict = f" (conflicts with {self.conflicting_event}"
            if self.conflicting_line is not None:
                conflict += f", line {self.conflicting_line}"
            conflict += ")"
        return f"{self.file} line {self.line}: {self.field}: {self.message}{conflict}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "conflicting_event": self.conflicting_event,
            "conflicting_line": self.conflicting_line,
        }


@dataclass
class ImportResult:
    cities_registered: int = 0
    events_written: int = 0  # registrations included, as the seed loader counts them
    events_already_present: int = 0  # rows whose report was already recorded
    cities: int = 0  # cities named by the files
    rows: int = 0  # event rows read
    refusals: list[Refusal] = field(default_factory=list)
    dry_run: bool = False
    transactions: int = 0
    # Seconds spent reading and deciding the rows, building what the batches
    # write (stored form, index, read-model rows, hashes), and in the database.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        return bool(self.refusals)


class ImportInterrupted(Exception):
    """A batch failed to commit (a lost connection, a live writer that registered
    the same city meanwhile): earlier batches stay written; running the import
    again completes it, their rows being repeats."""


class ImportRefused(Exception):
    def __init__(self, refusals: list[Refusal]) -> None:
        super().__init__(
            f"{len(refusals)} row(s) refused, nothing written; first: {refusals[0].describe()}"
        )
        self.refusals = refusals


def seed_report_id(slug: str, occurred_on: str, event_type: str) -> str:
    return f"seed:{slug}:{occurred_on}:{event_type.lower()}"


def source_name(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")


# ------------------------------------------------------------------- reading
def read_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line where the row starts, row) for each row of a CSV file with a header."""
    try:
        f = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as error:
        raise ImportFileError(f"cannot read {path}: {error.strerror or error}") from None
    with f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ImportFileError(f"{path.name} has no column {', '.join(missing)}")
        start = reader.line_num + 1
        for row in reader:
            yield start, row
            start = reader.line_num + 1


def parse_event_type(text: str) -> EventType:
    for kind in EventType:
        if kind.value.lower() == text.strip().lower():
            return kind
    choices = ", ".join(k.value for k in EventType)
    raise InvalidReport("event_type", f"{text!r} is not an event type ({choices})")


def parse_day(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidReport(name, f"{name} {text!r} is not a date (YYYY-MM-DD)") from None


def parse_number(name: str, text: str, kind: type[float] | type[int]) -> Any:
    try:
        return kind(text.strip())
    except ValueError:
        raise InvalidReport(name, f"{name} {text!r} is not a number") from None


# ------------------------------------------------------------------ deciding
class Importer:
    """Decides an archive's rows on in-memory cities, then writes them in batches."""

    def __init__(
        self,
        app: Dateline,
        *,
        country: str = DEFAULT_COUNTRY,
        reporter: str = DEFAULT_REPORTER,
        batch_events: int = BATCH_EVENTS,
    ) -> None:
        self.app = app
        self.country = country
        self.reporter = reporter
        self.batch_events = batch_events
        self.cities: dict[str, City] = {}  # slug -> city, in first-mention order
        self.by_name: dict[str, str] = {}  # a city's name in the events file -> slug
        self.lines: dict[str, int] = {}  # event id recorded by this import -> its line
        self.result = ImportResult()
        self._existing: set[str] | None = None

    def existing(self) -> set[str]:
        if self._existing is None:
            self._existing = set(self.app.city_slugs())
        return self._existing

    def city(self, slug: str) -> City | None:
        """The city, decided so far in memory, or loaded from the store."""
        city = self.cities.get(slug)
        if city is None and slug in self.existing():
            city = self.app.find_city(slug)
            if city is not None:
                city.take_interval_changes()  # what the load derived is stored already
                self.cities[slug] = city
        return city

    def refuse(self, file: str, line: int, error: DomainError) -> None:
        """A row the domain refused for a field (a rule it breaks: `refuse_conflict`)."""
        name = getattr(error, "field", None) or type(error).__name__
        self.result.refusals.append(Refusal(file, line, name, error.message))

    def refuse_conflict(
        self, file: str, line: int, error: ControlRuleViolation, city: City, on: date
    ) -> None:
        """The event the report collides with: a later one it would break, or
        the one that made the city's state on that day what it is."""
        conflicting = error.event_id if error.is_later_event else city.status_on(on).event_id
        self.result.refusals.append(
            Refusal(
                file,
                line,
                f"rule {error.rule}",
                error.message,
                conflicting,
                self.lines.get(conflicting or ""),
            )
        )

    def decide_cities(self, path: Path) -> None:
        file = path.name
        for line, row in read_rows(path, CITY_COLUMNS):
            slug = (row["slug"] or "").strip()
            self.result.cities += 1
            if not slug:
                self.result.refusals.append(Refusal(file, line, "slug", "slug must not be empty"))
                continue
            if slug in self.cities and slug not in self.existing():
                self.result.refusals.append(
                    Refusal(file, line, "slug", f"city {slug!r} is listed twice")
                )
                continue
            self.by_name.setdefault(row["name"], slug)
            if self.city(slug) is not None:
                continue  # already registered: extended, not registered again
            try:
                population = row["population"].strip()
                city = City.register(
                    slug=slug,
                    name=row["name"],
                    province=row["province"],
                    country=(row.get("country") or "").strip() or self.country,
                    lat=parse_number("lat", row["lat"], float),
                    lon=parse_number("lon", row["lon"], float),
                    population=parse_number("population", population, int) if population else None,
                    initial_controller=row["initial_controller"],
                    tracked_since=parse_day("tracked_since", row["tracked_since"]),
                    recorded_at=self.app.clock(),
                )
            except DomainError as error:
                self.refuse(file, line, error)
                continue
            self.cities[slug] = city
            self.lines[f"{slug}-1"] = line
            self.result.cities_registered += 1

    def decide_events(self, path: Path) -> None:
        file = path.name
        for line, row in read_rows(path, EVENT_COLUMNS):
            self.result.rows += 1
            named = row["city"]
            slug = self.by_name.get(named, named.strip())
            city = self.city(slug)
            if city is None:
                self.result.refusals.append(
                    Refusal(
                        file, line, "city", f"no city {named!r} in the cities file or the store"
                    )
                )
                continue
            try:
                kind = parse_event_type(row["event_type"])
                on = parse_day("occurred_on", row["occurred_on"])
                url = (row["source_url"] or "").strip() or None
                name = (row.get("source_name") or "").strip() or (source_name(url) if url else "")
                report_id = (row.get("report_id") or "").strip() or seed_report_id(
                    city.slug, on.isoformat(), kind.value
                )
                outcome = city.report(
                    kind,
                    occurred_on=on,
                    actor=row["actor"],
                    source=Source(name, url, (row.get("source_quote") or "").strip() or None),
                    note=(row.get("note") or "").strip() or None,
                    report_id=report_id,
                    reported_by=(row.get("reported_by") or "").strip() or self.reporter,
                    recorded_at=self.app.clock(),
                )
            except ControlRuleViolation as broken:
                self.refuse_conflict(file, line, broken, city, on)
                continue
            except DomainError as error:
                self.refuse(file, line, error)
                continue
            if outcome.created:
                self.lines[outcome.event_id] = line
            else:
                self.result.events_already_present += 1

    # ----------------------------------------------------------------- writing
    def batches(self) -> Iterator[list[City]]:
        """Cities with new events, whole, about `batch_events` events a batch."""
        batch: list[City] = []
        size = 0
        for city in self.cities.values():
            pending = len(city.pending_events)
            if not pending:
                continue
            batch.append(city)
            size += pending
            if size >= self.batch_events:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def write(self, progress: Progress | None = None) -> None:
        total = len(self.cities)
        if progress:
            progress(0, total)
        untouched = sum(1 for c in self.cities.values() if not c.pending_events)
        if progress and untouched:
            progress(untouched, total)
        writer = (
            PostgresBulkWriter(self.app)
            if isinstance(self.app.indexed, PostgresIndexedRecorder)
            else SQLiteBulkWriter(self.app)
        )
        seconds = self.result.seconds
        for batch in self.batches():
            started = time.perf_counter()
            prepared = prepare(self.app, batch)
            seconds["prepare"] = seconds.get("prepare", 0.0) + time.perf_counter() - started
            started = time.perf_counter()
            try:
                self.result.events_written += writer.write(prepared)
            except (psycopg.Error, sqlite3.Error, PersistenceError) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
                raise ImportInterrupted(
                    f"writing {len(batch)} cities ({batch[0].slug} to {batch[-1].slug}) failed: "
                    f"{first}; {self.result.events_written} events were written before it: "
                    "run the import again to complete it"
                ) from error
            seconds["write"] = seconds.get("write", 0.0) + time.perf_counter() - started
            self.result.transactions += 1
            for city in batch:
                self.app.writer.forget(city.id)
            if progress:
                progress(len(batch), total)


def run_import(
    app: Dateline,
    events: Path,
    cities: Path | None = None,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    country: str = DEFAULT_COUNTRY,
    reporter: str = DEFAULT_REPORTER,
    batch_events: int = BATCH_EVENTS,
) -> ImportResult:
    """Decide every row; write only if none is refused and not `dry_run`.
    `progress` hears of cities done (whole batches), all the files' cities the total."""
    importer = Importer(app, country=country, reporter=reporter, batch_events=batch_events)
    started = time.perf_counter()
    if cities is not None:
        importer.decide_cities(cities)
    importer.decide_events(events)
    result = importer.result
    result.seconds["decide"] = time.perf_counter() - started
    result.dry_run = dry_run
    if result.refusals:
        result.cities_registered = 0
        return result
    if dry_run:
        result.events_written = sum(len(c.pending_events) for c in importer.cities.values())
        return result
    importer.write(progress)
    return result


def default_cities_file(events: Path) -> Path | None:
    beside = events.parent / "cities.csv"
    return beside if beside.exists() and beside != events else None


# --------------------------------------------------------- what a batch writes
@dataclass
class Batch:
    """A batch's stored events (city by city, each in version order) and what goes with them."""

    stored: list[StoredEvent]
    index: list[IndexRow]
    rows: Rows
    snapshots: list[StoredEvent]


def prepare(app: Dateline, cities: list[City]) -> Batch:
    """What the append path's `_record` builds for these cities' new events."""
    mapper = app.mapper
    projector = Projector()
    stored: list[StoredEvent] = []
    index: list[IndexRow] = []
    snapshots: list[StoredEvent] = []
    base = app.settings.snapshot_interval
    for city in cities:
        changes = city.take_interval_changes()
        events = city.collect_events()
        slug = city.slug
        crossed = False
        for e in events:
            version = e.originator_version
            stored.append(mapper.to_stored_event(e))
            index.append(
                IndexRow(
                    city_id=e.originator_id,
                    version=version,
                    slug=slug,
                    event_type=type(e).__name__,
                    recorded_at=e.timestamp,
                    occurred_on=getattr(e, "occurred_on", None),
                    report_id=getattr(e, "report_id", None),
                )
            )
            projector.add(slug, e, changes.get(version))
            crossed = crossed or version % snapshot_interval(base, version) == 0
        if crossed and app.snapshots is not None:
            snapshots.append(mapper.to_stored_event(City.Snapshot.take(city)))
    return Batch(stored, index, projector.rows, snapshots)


class SQLiteBulkWriter:
    """One BEGIN IMMEDIATE per batch, through the recorder's own append (its
    events, hash-log entries, index rows, snapshots, read-model rows, position)."""

    def __init__(self, app: Dateline) -> None:
        recorder = app.indexed
        assert isinstance(recorder, SQLiteIndexedRecorder)
        self.recorder = recorder

    def write(self, batch: Batch) -> int:
        with immediate_transaction(self.recorder) as cursor:
            self.recorder._insert_events(
                cursor,
                batch.stored,
                **{
                    INDEX_KWARG: batch.index,
                    ROWS_KWARG: batch.rows,
                    SNAPSHOTS_KWARG: batch.snapshots,
                },
            )
        return len(batch.stored)


class PostgresBulkWriter:
    """One transaction per batch: the library's table lock and NOTIFY, then COPY."""

    def __init__(self, app: Dateline) -> None:
        recorder = app.indexed
        assert isinstance(recorder, PostgresIndexedRecorder)
        self.recorder = recorder
        schema = recorder.datastore.schema
        self.schema = schema
        events = SQL("{}.{}").format(Identifier(schema), Identifier(recorder.events_table_name))
        # n ids from the events table's sequence in one row: under the library's
        # table lock no other append draws from it, so they are consecutive.
        self.take_ids = SQL(
            "SELECT setval(s.seq, nextval(s.seq) + %s - 1) AS last FROM "
            "(SELECT pg_get_serial_sequence(%s, 'notification_id') AS seq) AS s"
        )
        self.events_name = f'"{schema}".{recorder.events_table_name}'
        self.copy_events = SQL(
            "COPY {} (originator_id, originator_version, topic, state, notification_id) "
            "FROM STDIN (FORMAT binary)"
        ).format(events)
        self.copy_index = SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
            SQL("{}.{}").format(Identifier(schema), Identifier(INDEX_TABLE)), SQL(INDEX_COLUMNS)
        )
        # As the append's: move only if nothing before these events awaits a catch-up.
        self.advance_position = SQL(
            "UPDATE {tracking} SET notification_id = %(last)s, events = events + %(n)s "
            "WHERE projection = %(projection)s AND notification_id >= COALESCE(("
            "SELECT MAX(notification_id) FROM {events} WHERE notification_id < %(first)s), 0)"
        ).format(
            tracking=SQL("{}.{}").format(
                Identifier(schema), Identifier("dateline_projection_tracking")
            ),
            events=events,
        )
        self.rows = bulk_writer(recorder.tables.dialect)  # COPY, as the rebuild's load

    def write(self, batch: Batch) -> int:
        n = len(batch.stored)
        r = self.recorder
        with (
            r.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
        ):
            r._lock_table(curs)  # the library's: SET LOCAL lock_timeout, LOCK TABLE
            r._notify_channel(curs)
            curs.execute(self.take_ids, (n, self.events_name))
            row = curs.fetchone()
            assert row is not None
            ids = list(range(int(row["last"]) - n + 1, int(row["last"]) + 1))
            self._copy_events(curs, batch.stored, ids)
            postgres_copy_entries(curs, self.schema, batch.stored, ids)
            self._copy_index(curs, batch.index)
            if batch.snapshots:
                curs.execute(
                    r.insert_snapshots,
                    [
                        [s.originator_id for s in batch.snapshots],
                        [s.originator_version for s in batch.snapshots],
                        [s.topic for s in batch.snapshots],
                        [s.state for s in batch.snapshots],
                    ],
                )
            self.rows.write(curs, batch.rows)
            curs.execute(
                self.advance_position,
                {"last": ids[-1], "first": ids[0], "n": n, "projection": PROJECTION},
            )
        return n

    def _copy_events(self, curs: Any, stored: list[StoredEvent], ids: list[int]) -> None:
        with curs.copy(self.copy_events) as copy:
            copy.set_types(EVENT_TYPES)
            for s, nid in zip(stored, ids, strict=True):
                copy.write_row((s.originator_id, s.originator_version, s.topic, s.state, nid))

    def _copy_index(self, curs: Any, index: list[IndexRow]) -> None:
        with curs.copy(self.copy_index) as copy:
            copy.set_types(INDEX_TYPES)
            for r in index:
                copy.write_row(
                    (
                        r.city_id,
                        r.version,
                        r.slug,
                        r.event_type,
                        r.recorded_at,
                        r.occurred_on,
                        r.report_id,
                    )
                )
