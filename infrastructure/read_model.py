"""The bitemporal read model: control as of a date, as known at a moment, by lookup.

Tables (migration 0003), the same on SQLite and PostgreSQL:

- `dateline_control_periods`: rectangles. A valid period [valid_from, valid_to)
  on the world's calendar times a record period [known_from, known_to) on record
  time (NULL end = open), with the control state, the event that caused it and
  the city version that recorded the row. A backdated report or a retraction
  closes the record period of the rows it changes (`known_to`, the only update
  ever made) and opens new ones. "As of D, as known at T" is the one row that
  contains (D, T); none before `tracked_since` or before the city was known.
- `dateline_event_facts`: one row per event as the log shows it, retraction
  details attached to the withdrawn event with the moment they were recorded;
  for `/changes`, histories, and the city's version as known at T.
- `dateline_rm_cities`: the city's descriptive fields (immutable after
  registration), so a status read loads no aggregate.
- `dateline_projection_tracking`: the notification id the tables reflect.

The projection reads the event log after that position in batches. A batch's
changes and the new position commit in one transaction, taken under a lock that
serialises catch-ups across threads and processes (PostgreSQL: the tracking
row `FOR UPDATE`, re-read once held; SQLite: `BEGIN IMMEDIATE`). So each event
is applied exactly once, whatever crashes between an append and its
projection: the next catch-up, on any write or on start-up, applies it.
"""

from __future__ import annotations

import random
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from domain.city import City, city_id
from domain.control import UNKNOWN, ControlInterval, ControlState, Source, Status
from domain.errors import CityNotFound
from domain.log import LoggedEvent, Retraction, read_log
from infrastructure.application import CityView, StatusView, city_view
from infrastructure.recorders import sqlite_instant

if TYPE_CHECKING:
    from infrastructure.application import Dateline

PROJECTION = "read_model"  # the row in dateline_projection_tracking (migration 0003)
BATCH_SIZE = 500
ONE_DAY = timedelta(days=1)
ONE_MICROSECOND = timedelta(microseconds=1)
END_OF_TIME = datetime.max.replace(tzinfo=UTC)

TABLES = {
    "periods": "dateline_control_periods",
    "facts": "dateline_event_facts",
    "cities": "dateline_rm_cities",
    "tracking": "dateline_projection_tracking",
}
PLAIN_CONTAINS = (
    "p.valid_from <= %(d)s AND (p.valid_to IS NULL OR p.valid_to > %(d)s) "
    "AND p.known_from <= %(t)s AND (p.known_to IS NULL OR p.known_to > %(t)s)"
)
CITY_COLUMNS = (
    "city_id, slug, name, province, country, lat, lon, population, "
    "initial_controller, tracked_since, registered_at"
)
PERIOD_COLUMNS = (
    "city_id, valid_from, valid_to, known_from, known_to, status, controller, "
    "contested_by, since, event_id, version"
)
FACT_COLUMNS = (
    "city_id, version, slug, event_type, recorded_at, occurred_on, actor, source_name, "
    "source_url, source_quote, note, report_id, reported_by, retracts, reason, "
    "retracted_in, retraction_reason, retracted_by, retracted_at"
)
CITY_FIELDS = (
    "c.slug, c.name, c.province, c.country, c.lat, c.lon, c.population, "
    "c.initial_controller, c.tracked_since"
)
STATE_FIELDS = "p.status, p.controller, p.contested_by, p.since, p.event_id"
# One city: a lookup by primary key, one probe for the row containing (D, T)
# and one backward index probe for the version known at T. The city id is a
# parameter (not joined from the slug), so the probe always uses it.
STATUS_ONE = (
    "SELECT " + CITY_FIELDS + ", " + STATE_FIELDS + ","
    " (SELECT f.version FROM {facts} f WHERE f.city_id = %(city)s AND f.recorded_at <= %(t)s"
    "  ORDER BY f.recorded_at DESC LIMIT 1) AS known_version"
    " FROM {cities} c LEFT JOIN {periods} p ON p.city_id = %(city)s AND {contains}"
    " WHERE c.city_id = %(city)s"
)
# Every city: one pass over each table and hash joins. Plain column predicates,
# whose selectivity the planner estimates from statistics even in a generic
# plan (a range @> with a parameter is guessed at 0.5% and led PostgreSQL to a
# nested loop over 10,000 x 10,000 rows).
STATUS_ALL = (
    "SELECT " + CITY_FIELDS + ", " + STATE_FIELDS + ", v.version AS known_version"
    " FROM {cities} c"
    " LEFT JOIN {periods} p ON p.city_id = c.city_id AND "
    + PLAIN_CONTAINS
    + " LEFT JOIN (SELECT city_id, MAX(version) AS version FROM {facts}"
    "  WHERE recorded_at <= %(t)s GROUP BY city_id) v ON v.city_id = c.city_id"
    " ORDER BY c.slug"
)


@dataclass(frozen=True, slots=True)
class ControlPeriod:
    """One rectangle: `state` held on [valid_from, valid_to) as known on
    [known_from, known_to); `version` is the city version that recorded it."""

    city: str
    valid_from: date
    valid_to: date | None
    known_from: datetime
    known_to: datetime | None
    state: ControlState
    version: int


@dataclass(frozen=True, slots=True)
class Difference:
    """Where the read model and the aggregate fold disagree."""

    city: str
    what: str  # status | statuses | timeline | history | cities
    as_of: date | None
    known_at: datetime | None
    read_model: str
    fold: str


@dataclass(slots=True)
class _Period:
    """A period row while a batch is applied; `stored`: already in the table."""

    city_id: UUID
    valid_from: date
    valid_to: date | None
    known_from: datetime
    known_to: datetime | None
    state: ControlState
    version: int
    stored: bool


# ------------------------------------------------------------------- stores
class _Store:
    """What differs between SQLite and PostgreSQL: SQL text, values, locking."""

    contains: str  # the point-in-rectangle predicate on `p`, params %(d)s and %(t)s
    lock_position: str

    def sql(self, text: str) -> str:
        return text.format(**{k: self.table(v) for k, v in TABLES.items()}, contains=self.contains)

    def table(self, name: str) -> str:
        raise NotImplementedError

    def uid(self, value: UUID) -> Any:
        raise NotImplementedError

    def day(self, value: date | None) -> Any:
        raise NotImplementedError

    def instant(self, value: datetime | None) -> Any:
        raise NotImplementedError

    def load_uid(self, value: Any) -> UUID:
        raise NotImplementedError

    def load_day(self, value: Any) -> date | None:
        raise NotImplementedError

    def load_instant(self, value: Any) -> datetime | None:
        raise NotImplementedError

    def write(self) -> Any:  # a context manager: one locked transaction, yields a cursor
        raise NotImplementedError

    def read(self) -> Any:  # a context manager: yields a cursor
        raise NotImplementedError


class _SQLiteStore(_Store):
    contains = PLAIN_CONTAINS
    lock_position = "SELECT notification_id FROM {tracking} WHERE projection = %s"

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def sql(self, text: str) -> str:
        text = super().sql(text)
        return re.sub(r"%\((\w+)\)s", r":\1", text).replace("%s", "?")

    def table(self, name: str) -> str:
        return name

    def uid(self, value: UUID) -> Any:
        return value.hex

    def day(self, value: date | None) -> Any:
        return None if value is None else value.isoformat()

    def instant(self, value: datetime | None) -> Any:
        return None if value is None else sqlite_instant(value)

    def load_uid(self, value: Any) -> UUID:
        return UUID(hex=value)

    def load_day(self, value: Any) -> date | None:
        return None if value is None else date.fromisoformat(value)

    def load_instant(self, value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    @contextmanager
    def write(self) -> Iterator[Any]:
        # A connection of our own, not the library pool's writer: a thread that
        # holds the pool's writer and asks the pool for a reader (the log, an
        # aggregate) waits behind any thread queued for the writer, which waits
        # for it (5 s, then ConnectionUnavailableError).
        pool = self.datastore.pool
        conn = sqlite3.connect(
            pool.db_name,
            uri=True,
            isolation_level=None,
            timeout=pool.lock_timeout or 5,
            check_same_thread=False,
        )
        conn.row_factory = sqlite3.Row
        try:
            # BEGIN IMMEDIATE takes the database's write lock before the position
            # is read: another process's catch-up waits here, then sees ours.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn.cursor()
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        finally:
            conn.close()

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=False) as cursor:
            yield cursor


class _PostgresStore(_Store):
    # One probe of the GiST index behind the exclusion constraint.
    contains = (
        "daterange(p.valid_from, p.valid_to) @> %(d)s::date "
        "AND tstzrange(p.known_from, p.known_to) @> %(t)s::timestamptz"
    )
    lock_position = "SELECT notification_id FROM {tracking} WHERE projection = %s FOR UPDATE"

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self.schema = datastore.schema

    def table(self, name: str) -> str:
        return f'"{self.schema}".{name}'

    def uid(self, value: UUID) -> Any:
        return value

    def day(self, value: date | None) -> Any:
        return value

    def instant(self, value: datetime | None) -> Any:
        return value

    def load_uid(self, value: Any) -> UUID:
        return cast(UUID, value)

    def load_day(self, value: Any) -> date | None:
        return cast(date | None, value)

    def load_instant(self, value: Any) -> datetime | None:
        return None if value is None else cast(datetime, value).astimezone(UTC)

    @contextmanager
    def write(self) -> Iterator[Any]:
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            # The transaction waits on other connections (the log, aggregates)
            # between its statements; the library's 5 s idle limit is too tight.
            cursor.execute("SET LOCAL idle_in_transaction_session_timeout = '120s'")
            yield cursor

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            yield cursor


# --------------------------------------------------------------- read model
class ReadModel:
    """Maintains the bitemporal tables from the log and answers queries from them."""

    def __init__(self, app: Dateline) -> None:
        self.app = app
        datastore = app.indexed.datastore
        self._store: _Store = (
            _SQLiteStore(datastore)
            if isinstance(datastore, SQLiteDatastore)
            else _PostgresStore(datastore)
        )
        self._lock = threading.Lock()  # one catch-up per process at a time
        s = self._store.sql
        self._lock_position = s(self._store.lock_position)
        self._set_position = s("UPDATE {tracking} SET notification_id = %s WHERE projection = %s")
        self._select_open = "SELECT " + PERIOD_COLUMNS + " FROM {periods} WHERE known_to IS NULL "
        self._close_period = s(
            "UPDATE {periods} SET known_to = %s "
            "WHERE city_id = %s AND valid_from = %s AND known_from = %s AND known_to IS NULL"
        )
        self._insert_period = s(
            "INSERT INTO {periods} (" + PERIOD_COLUMNS + ") VALUES (" + _marks(11) + ")"
        )
        self._insert_city = s(
            "INSERT INTO {cities} (" + CITY_COLUMNS + ") VALUES (" + _marks(11) + ")"
        )
        self._insert_fact = s(
            "INSERT INTO {facts} (" + FACT_COLUMNS + ") VALUES (" + _marks(19) + ")"
        )
        self._retract_fact = s(
            "UPDATE {facts} SET retracted_in = %s, retraction_reason = %s, retracted_by = %s, "
            "retracted_at = %s WHERE city_id = %s AND version = %s"
        )
        self._status_one = s(STATUS_ONE)
        self._status_all = s(STATUS_ALL)
        self._select_city = s("SELECT " + CITY_COLUMNS + " FROM {cities} WHERE slug = %(slug)s")
        self._select_changes = s(
            "SELECT " + FACT_COLUMNS + " FROM {facts} WHERE occurred_on >= %(start)s "
            "AND occurred_on <= %(end)s AND recorded_at <= %(t)s "
            "ORDER BY occurred_on, slug, version"
        )
        self._select_history = s(
            "SELECT " + FACT_COLUMNS + " FROM {facts} WHERE city_id = %(city)s "
            "AND recorded_at <= %(t)s ORDER BY version"
        )
        self._select_timeline = s(
            "SELECT " + PERIOD_COLUMNS + " FROM {periods} WHERE city_id = %(city)s "
            "AND known_from <= %(t)s AND (known_to IS NULL OR known_to > %(t)s) ORDER BY valid_from"
        )
        self._select_periods = s(
            "SELECT " + PERIOD_COLUMNS + " FROM {periods} WHERE city_id = %(city)s "
            "ORDER BY known_from, valid_from"
        )
        self._select_slugs = s("SELECT slug FROM {cities} ORDER BY slug")
        self._read_position = s("SELECT notification_id FROM {tracking} WHERE projection = %s")

    # ------------------------------------------------------------ projection
    def catch_up(self) -> int:
        """Apply every event recorded after the tracking position; returns how many.

        Called after each successful append (before its answer is sent) and when
        the application starts. Safe to call from any thread or process."""
        applied = 0
        with self._lock:
            # Without the write lock: often another thread or process has
            # already applied everything up to and including our append.
            if self.position() >= (self.app.recorder.max_notification_id() or 0):
                return 0
            while True:
                with self._store.write() as cursor:
                    position = self._locked_position(cursor)
                    batch = self._notifications_after(position)
                    if batch:
                        self._apply(cursor, batch)
                        cursor.execute(self._set_position, (batch[-1].id, PROJECTION))
                applied += len(batch)
                if len(batch) < BATCH_SIZE:
                    return applied

    def rebuild(self) -> int:
        """Empty the tables and apply the whole log again, in one transaction:
        readers see the old tables until it commits. Returns the events applied."""
        applied = 0
        with self._lock, self._store.write() as cursor:
            self._locked_position(cursor)
            for table in ("periods", "facts", "cities"):
                cursor.execute(self._store.sql("DELETE FROM {" + table + "}"))
            position = 0
            while True:
                batch = self._notifications_after(position)
                if batch:
                    self._apply(cursor, batch)
                    position = batch[-1].id
                applied += len(batch)
                if len(batch) < BATCH_SIZE:
                    break
            cursor.execute(self._set_position, (position, PROJECTION))
        return applied

    def position(self) -> int:
        """The notification id up to which the tables reflect the log."""
        with self._store.read() as cursor:
            cursor.execute(self._read_position, (PROJECTION,))
            row = cursor.fetchone()
        return 0 if row is None else int(row["notification_id"])

    def _locked_position(self, cursor: Any) -> int:
        cursor.execute(self._lock_position, (PROJECTION,))
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError(
                f"{TABLES['tracking']} has no {PROJECTION!r} row: run `dateline migrate`"
            )
        return int(row["notification_id"])

    def _notifications_after(self, position: int) -> Sequence[Notification]:
        return self.app.recorder.select_notifications(
            start=position, limit=BATCH_SIZE, inclusive_of_start=False
        )

    def _apply(self, cursor: Any, notifications: Sequence[Notification]) -> None:
        store = self._store
        events: list[Any] = [self.app.mapper.to_domain_event(n) for n in notifications]
        first_version: dict[UUID, int] = {}
        for event in events:
            first_version.setdefault(event.originator_id, event.originator_version)
        open_periods = self._open_periods(
            cursor, [cid for cid, version in first_version.items() if version > 1]
        )
        cities: dict[UUID, City] = {}
        latest_intervals: dict[UUID, list[ControlInterval]] = {}
        new_periods: list[_Period] = []
        closed: list[_Period] = []
        new_cities: list[tuple[Any, ...]] = []
        facts: dict[tuple[UUID, int], LoggedEvent] = {}
        retractions: list[tuple[UUID, int, Retraction]] = []

        for event in events:
            cid: UUID = event.originator_id
            version: int = event.originator_version
            recorded_at: datetime = event.timestamp
            city = cities.get(cid)
            if city is None and version > 1:
                city = cast(City, self.app.repository.get(cid, version=version - 1))
            city = cast(City, event.mutate(city))
            cities[cid] = city

            if isinstance(event, City.Registered):
                new_cities.append(
                    (
                        store.uid(cid),
                        city.slug,
                        city.name,
                        city.province,
                        city.country,
                        city.lat,
                        city.lon,
                        city.population,
                        city.initial_controller,
                        store.day(city.tracked_since),
                        store.instant(recorded_at),
                    )
                )
            logged = read_log(city.slug, [event])[0]
            facts[(cid, version)] = logged
            if isinstance(event, City.Retracted):
                target = int(city.control_events[event.event_id][1])
                retraction = Retraction(logged.id, event.reason, event.retracted_by, recorded_at)
                if (cid, target) in facts:
                    facts[(cid, target)] = replace(facts[(cid, target)], retracted=retraction)
                else:
                    retractions.append((cid, target, retraction))

            # Diff the city's intervals now against its open rows.
            periods = open_periods.setdefault(cid, {})
            before = latest_intervals.get(cid)
            after = city.intervals() if before is None else city.intervals_after_latest(before)
            latest_intervals[cid] = after
            intervals = {i.start: i for i in after}
            for start, period in list(periods.items()):
                interval = intervals.get(start)
                if interval is None or (interval.end, interval.state) != (
                    period.valid_to,
                    period.state,
                ):
                    del periods[start]
                    period.known_to = recorded_at
                    if period.stored:
                        closed.append(period)
            for start, interval in intervals.items():
                if start not in periods:
                    period = _Period(
                        cid, start, interval.end, recorded_at, None, interval.state, version, False
                    )
                    periods[start] = period
                    new_periods.append(period)

        # Close before inserting: the exclusion constraint never sees an overlap.
        if closed:
            cursor.executemany(
                self._close_period,
                [
                    (
                        store.instant(p.known_to),
                        store.uid(p.city_id),
                        store.day(p.valid_from),
                        store.instant(p.known_from),
                    )
                    for p in closed
                ],
            )
        if new_periods:
            cursor.executemany(self._insert_period, [self._period_row(p) for p in new_periods])
        if new_cities:
            cursor.executemany(self._insert_city, new_cities)
        if facts:
            cursor.executemany(
                self._insert_fact, [self._fact_row(cid, e) for (cid, _), e in facts.items()]
            )
        if retractions:
            cursor.executemany(
                self._retract_fact,
                [
                    (
                        r.event_id,
                        r.reason,
                        r.retracted_by,
                        store.instant(r.recorded_at),
                        store.uid(cid),
                        target,
                    )
                    for cid, target, r in retractions
                ],
            )

    def _open_periods(
        self, cursor: Any, city_ids: Sequence[UUID]
    ) -> dict[UUID, dict[date, _Period]]:
        found: dict[UUID, dict[date, _Period]] = {cid: {} for cid in city_ids}
        for start in range(0, len(city_ids), BATCH_SIZE):
            chunk = city_ids[start : start + BATCH_SIZE]
            cursor.execute(
                self._store.sql(self._select_open + f"AND city_id IN ({_marks(len(chunk))})"),
                [self._store.uid(cid) for cid in chunk],
            )
            for row in cursor.fetchall():
                period = self._period(row)
                found[period.city_id][period.valid_from] = period
        return found

    def _period_row(self, p: _Period) -> tuple[Any, ...]:
        store = self._store
        return (
            store.uid(p.city_id),
            store.day(p.valid_from),
            store.day(p.valid_to),
            store.instant(p.known_from),
            store.instant(p.known_to),
            p.state.status.value,
            p.state.controller,
            p.state.contested_by,
            store.day(p.state.since),
            p.state.event_id,
            p.version,
        )

    def _period(self, row: Any) -> _Period:
        store = self._store
        valid_from = store.load_day(row["valid_from"])
        known_from = store.load_instant(row["known_from"])
        assert valid_from is not None and known_from is not None
        return _Period(
            store.load_uid(row["city_id"]),
            valid_from,
            store.load_day(row["valid_to"]),
            known_from,
            store.load_instant(row["known_to"]),
            ControlState(
                Status(row["status"]),
                row["controller"],
                row["contested_by"],
                store.load_day(row["since"]),
                row["event_id"],
            ),
            int(row["version"]),
            stored=True,
        )

    def _fact_row(self, cid: UUID, e: LoggedEvent) -> tuple[Any, ...]:
        store = self._store
        source = e.source or Source("")
        r = e.retracted
        return (
            store.uid(cid),
            e.version,
            e.city,
            e.type,
            store.instant(e.recorded_at),
            store.day(e.occurred_on),
            e.actor,
            source.name if e.source else None,
            source.url,
            source.quote,
            e.note,
            e.report_id,
            e.reported_by,
            e.retracts,
            e.reason,
            r.event_id if r else None,
            r.reason if r else None,
            r.retracted_by if r else None,
            store.instant(r.recorded_at) if r else None,
        )

    # --------------------------------------------------------------- queries
    def status(
        self, slug: str, as_of: date | None = None, known_at: datetime | None = None
    ) -> StatusView:
        """As `Dateline.status`: one indexed lookup, no aggregate loaded."""
        known_at = known_at or self.app.clock()
        on = as_of or known_at.date()
        uid = self._store.uid(city_id(slug))
        with self._store.read() as cursor:
            cursor.execute(self._status_one, self._point(on, known_at) | {"city": uid})
            row = cursor.fetchone()
        if row is None:
            raise CityNotFound(slug)
        return self._status_view(row, on, known_at)

    def statuses(
        self, as_of: date | None = None, known_at: datetime | None = None
    ) -> list[StatusView]:
        """Every city's status, in slug order: one query."""
        known_at = known_at or self.app.clock()
        on = as_of or known_at.date()
        with self._store.read() as cursor:
            cursor.execute(self._status_all, self._point(on, known_at))
            rows = cursor.fetchall()
        return [self._status_view(row, on, known_at) for row in rows]

    def changes(
        self, start: date, end: date, known_at: datetime | None = None
    ) -> list[LoggedEvent]:
        """Every event of every city with occurred_on in [start, end], as known at
        `known_at`: ordered by occurred_on, city, version. Registrations count
        (occurred_on = tracked_since); retractions have no date and appear as
        `retracted` on the event they withdrew, if recorded by `known_at`."""
        known_at = known_at or self.app.clock()
        params = {
            "start": self._store.day(start),
            "end": self._store.day(end),
            "t": self._store.instant(known_at),
        }
        with self._store.read() as cursor:
            cursor.execute(self._select_changes, params)
            rows = cursor.fetchall()
        return [self._logged(row, known_at) for row in rows]

    def history(self, slug: str, known_at: datetime | None = None) -> list[LoggedEvent]:
        """As `Dateline.history`: the city's log in recording order at `known_at`
        (None: all of it, even events stamped a moment past the clock)."""
        known_at = known_at or END_OF_TIME
        self.city(slug)
        params = {"city": self._store.uid(city_id(slug)), "t": self._store.instant(known_at)}
        with self._store.read() as cursor:
            cursor.execute(self._select_history, params)
            rows = cursor.fetchall()
        return [self._logged(row, known_at) for row in rows]

    def timeline(
        self, slug: str, known_at: datetime | None = None
    ) -> tuple[CityView, list[ControlInterval]]:
        """As `Dateline.timeline`: the intervals as known at `known_at`."""
        known_at = known_at or self.app.clock()
        view = self.city(slug)
        params = {"city": self._store.uid(city_id(slug)), "t": self._store.instant(known_at)}
        with self._store.read() as cursor:
            cursor.execute(self._select_timeline, params)
            rows = cursor.fetchall()
        periods = [self._period(row) for row in rows]
        return view, [ControlInterval(p.valid_from, p.valid_to, p.state) for p in periods]

    def city(self, slug: str) -> CityView:
        with self._store.read() as cursor:
            cursor.execute(self._select_city, {"slug": slug})
            row = cursor.fetchone()
        if row is None:
            raise CityNotFound(slug)
        return self._city_view(row)

    def city_slugs(self) -> list[str]:
        with self._store.read() as cursor:
            cursor.execute(self._select_slugs)
            return [row["slug"] for row in cursor.fetchall()]

    def periods(self, slug: str) -> list[ControlPeriod]:
        """Every row of the city, open and closed, by known_from then valid_from."""
        with self._store.read() as cursor:
            cursor.execute(self._select_periods, {"city": self._store.uid(city_id(slug))})
            rows = cursor.fetchall()
        return [
            ControlPeriod(
                slug, p.valid_from, p.valid_to, p.known_from, p.known_to, p.state, p.version
            )
            for p in map(self._period, rows)
        ]

    def _point(self, on: date, known_at: datetime) -> dict[str, Any]:
        return {"d": self._store.day(on), "t": self._store.instant(known_at)}

    def _city_view(self, row: Any) -> CityView:
        tracked_since = self._store.load_day(row["tracked_since"])
        assert tracked_since is not None
        return CityView(
            row["slug"],
            row["name"],
            row["province"],
            row["country"],
            float(row["lat"]),
            float(row["lon"]),
            None if row["population"] is None else int(row["population"]),
            row["initial_controller"],
            tracked_since,
        )

    def _status_view(self, row: Any, on: date, known_at: datetime) -> StatusView:
        state = UNKNOWN
        if row["status"] is not None:
            state = ControlState(
                Status(row["status"]),
                row["controller"],
                row["contested_by"],
                self._store.load_day(row["since"]),
                row["event_id"],
            )
        version = row["known_version"]
        return StatusView(
            self._city_view(row), on, known_at, state, 0 if version is None else int(version)
        )

    def _logged(self, row: Any, known_at: datetime) -> LoggedEvent:
        store = self._store
        recorded_at = store.load_instant(row["recorded_at"])
        assert recorded_at is not None
        retracted = None
        retracted_at = store.load_instant(row["retracted_at"])
        if retracted_at is not None and retracted_at <= known_at:
            retracted = Retraction(
                row["retracted_in"], row["retraction_reason"], row["retracted_by"], retracted_at
            )
        source = None
        if row["source_name"] is not None:
            source = Source(row["source_name"], row["source_url"], row["source_quote"])
        return LoggedEvent(
            id=f"{row['slug']}-{row['version']}",
            city=row["slug"],
            type=row["event_type"],
            version=int(row["version"]),
            recorded_at=recorded_at,
            occurred_on=store.load_day(row["occurred_on"]),
            actor=row["actor"],
            source=source,
            note=row["note"],
            report_id=row["report_id"],
            reported_by=row["reported_by"],
            retracts=row["retracts"],
            reason=row["reason"],
            retracted=retracted,
        )

    # ----------------------------------------------------------------- check
    def check(self, samples: int = 200, seed: int = 0) -> tuple[list[Difference], int]:
        """Compare with the aggregate fold (as `Dateline.status` computes it) on
        every city: the status at a sample of (as_of, known_at) pairs that always
        includes each period's and each event's boundaries, the timeline at each
        record instant, the history, and the all-cities map at a few pairs.
        Returns the differences and the number of pairs compared."""
        app = self.app
        differences: list[Difference] = []
        log_slugs = app.city_slugs()
        model_slugs = self.city_slugs()
        for slug in sorted(set(log_slugs) ^ set(model_slugs)):
            where = "read model" if slug in model_slugs else "log"
            differences.append(Difference(slug, "cities", None, None, f"only in the {where}", ""))
        compared = 0
        rng = random.Random(seed)
        map_pairs: list[tuple[date, datetime]] = [(app.clock().date(), app.clock())]
        for slug in log_slugs:
            if slug not in model_slugs:
                continue
            fold = _Fold(app, slug)
            expected_log = app.history(slug)
            actual_log = self.history(slug)
            if expected_log != actual_log:
                differences.append(
                    Difference(
                        slug, "history", None, fold.now, _short(actual_log), _short(expected_log)
                    )
                )
            periods = self.periods(slug)
            days, instants = _boundaries(fold.view.tracked_since, expected_log, periods, fold.now)
            for known_at in instants:
                model_view, model_intervals = self.timeline(slug, known_at)
                fold_view, fold_intervals = fold.timeline(known_at)
                if (model_view, model_intervals) != (fold_view, fold_intervals):
                    differences.append(
                        Difference(
                            slug,
                            "timeline",
                            None,
                            known_at,
                            _short(model_intervals),
                            _short(fold_intervals),
                        )
                    )
            for as_of, known_at in _pairs(days, instants, samples, rng):
                compared += 1
                actual = self.status(slug, as_of, known_at)
                expected = fold.status(as_of, known_at)
                if actual != expected:
                    differences.append(
                        Difference(
                            slug, "status", as_of, known_at, _describe(actual), _describe(expected)
                        )
                    )
            map_pairs.append((rng.choice(days), rng.choice(instants)))
        for as_of, known_at in map_pairs[:5]:
            by_slug = {v.city.slug: v for v in self.statuses(as_of, known_at)}
            for slug in log_slugs:
                if slug not in by_slug:
                    continue
                expected = _Fold(app, slug).status(as_of, known_at)
                if by_slug[slug] != expected:
                    differences.append(
                        Difference(
                            slug,
                            "statuses",
                            as_of,
                            known_at,
                            _describe(by_slug[slug]),
                            _describe(expected),
                        )
                    )
        return differences, compared


class _Fold:
    """`Dateline.status`/`timeline` for one city, with each version loaded once."""

    def __init__(self, app: Dateline, slug: str) -> None:
        self.app = app
        self.slug = slug
        self.id = city_id(slug)
        self.now = app.clock()
        current = cast(City, app.repository.get(self.id))
        self.view = city_view(current)
        self._versions: dict[int, City] = {current.version: current}

    def _at(self, known_at: datetime) -> City | None:
        version = self.app.indexed.version_known_at(self.id, known_at)
        if version is None:
            return None
        if version not in self._versions:
            self._versions[version] = cast(City, self.app.repository.get(self.id, version=version))
        return self._versions[version]

    def status(self, as_of: date, known_at: datetime) -> StatusView:
        city = self._at(known_at)
        if city is None:
            return StatusView(self.view, as_of, known_at, UNKNOWN, 0)
        return StatusView(city_view(city), as_of, known_at, city.status_on(as_of), city.version)

    def timeline(self, known_at: datetime) -> tuple[CityView, list[ControlInterval]]:
        city = self._at(known_at)
        return self.view, ([] if city is None else city.intervals())


def _boundaries(
    tracked_since: date, log: Iterable[LoggedEvent], periods: Iterable[ControlPeriod], now: datetime
) -> tuple[list[date], list[datetime]]:
    days = {tracked_since - ONE_DAY, tracked_since}
    instants = {now}
    for e in log:
        instants |= {e.recorded_at, e.recorded_at - ONE_MICROSECOND}
        if e.occurred_on is not None:
            days |= {e.occurred_on - ONE_DAY, e.occurred_on}
    for p in periods:
        days |= {p.valid_from, p.valid_from - ONE_DAY}
        instants |= {p.known_from, p.known_from - ONE_MICROSECOND}
        if p.valid_to is not None:
            days |= {p.valid_to, p.valid_to - ONE_DAY}
        if p.known_to is not None:
            instants |= {p.known_to, p.known_to - ONE_MICROSECOND}
    return sorted(days), sorted(instants)


def _pairs(
    days: Sequence[date], instants: Sequence[datetime], samples: int, rng: random.Random
) -> list[tuple[date, datetime]]:
    """All pairs if there are at most `samples`; else every day and every instant
    at least once, then random pairs up to `samples`."""
    if len(days) * len(instants) <= samples:
        return [(d, t) for d in days for t in instants]
    chosen = {(d, rng.choice(instants)) for d in days}
    chosen |= {(rng.choice(days), t) for t in instants}
    while len(chosen) < samples:
        chosen.add((rng.choice(days), rng.choice(instants)))
    return sorted(chosen)


def _describe(view: StatusView) -> str:
    s = view.state
    return (
        f"{s.status.value} controller={s.controller} contested_by={s.contested_by} "
        f"since={s.since} event={s.event_id} version={view.version}"
    )


def _short(items: Sequence[Any]) -> str:
    return f"{len(items)} items: " + "; ".join(repr(i) for i in items)[:300]


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)
