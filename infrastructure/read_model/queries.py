"""Reads from the read model: status, statuses, timeline, history, changes.

Every answer is one or two indexed queries, whatever the length of a city's
history; no aggregate is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from pydantic_core import to_json

from dateline.domain.city import city_id
from dateline.domain.control import UNKNOWN, ControlInterval, ControlState, Source, Status
from dateline.domain.errors import CityNotFound
from dateline.domain.log import LoggedEvent, Retraction
from dateline.infrastructure.read_model.projection import PeriodRow
from dateline.infrastructure.read_model.tables import (
    CITY_COLUMNS,
    FACT_COLUMNS,
    PERIOD_COLUMNS,
    PROJECTION,
    Dialect,
    PostgresDialect,
    SQLiteDialect,
)
from dateline.infrastructure.views import CityView, DegradedCity, StatusView

END_OF_TIME = datetime.max.replace(tzinfo=UTC)
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
    "  ORDER BY f.recorded_at DESC LIMIT 1) AS known_version,"
    " d.event_id AS degraded_event, d.reason AS degraded_reason,"
    " d.noticed_at AS degraded_at"
    " FROM {cities} c LEFT JOIN {periods} p ON p.city_id = %(city)s AND {contains}"
    " LEFT JOIN {degraded} d ON d.city_id = %(city)s"
    " WHERE c.city_id = %(city)s"
)
# Every city: each city's row containing (D, T) found by one search of the
# PostgreSQL GiST index on the rows' boxes (migration 0007; SQLite reads the
# table), hash-joined to the cities. The version known at T is the city's latest
# unless T is before it was recorded; only then is the city's facts probed.
KNOWN_VERSION = (
    "CASE WHEN c.version_at <= %(t)s THEN c.version ELSE"
    " (SELECT f.version FROM {facts} f WHERE f.city_id = c.city_id AND f.recorded_at <= %(t)s"
    "  ORDER BY f.recorded_at DESC LIMIT 1) END"
)
STATUS_ALL = (
    "SELECT " + CITY_FIELDS + ", " + STATE_FIELDS + ", " + KNOWN_VERSION + " AS known_version,"
    " p.source_name, p.source_url"
    " FROM {cities} c LEFT JOIN {periods} p ON p.city_id = c.city_id AND {every}"
    " ORDER BY c.slug"
)


def _json(expression: str) -> str:
    """SQL: the JSON text of a text, integer or date value (null for NULL)."""
    return f"coalesce(to_json({expression})::text, 'null')"


def _float(expression: str) -> str:
    """SQL: a float8's JSON text as pydantic-core writes it: shortest digits like
    PostgreSQL, but `36.0` for an integral value, decimals down to 1e-5 and a
    bare exponent (`1.5e-7`) below. Plain string tests first: regular
    expressions only for the rare exponents."""
    v = f"({expression})::text"
    return (
        f"(SELECT CASE WHEN strpos(v, 'e') = 0 THEN"
        f" CASE WHEN strpos(v, '.') = 0 THEN v || '.0' ELSE v END"
        f" WHEN v LIKE '%%e-05' THEN (CASE WHEN v LIKE '-%%' THEN '-' ELSE '' END) || '0.0000'"
        f" || replace(substring(v FROM '([0-9.]+)e-05$'), '.', '')"
        f" ELSE regexp_replace(v, 'e([-+])0*', 'e\\1') END FROM (SELECT {v} AS v) f)"
    )


def _feature() -> str:
    """SQL: one city's GeoJSON Feature as compact JSON text, its keys in the order
    `api.routers.status.feature_collection` writes them; `%(as_of_json)s` and
    `%(known_at_json)s` are the JSON texts of the day and instant (the same for
    every city)."""
    cause = "p.since IS NOT NULL AND p.source_name IS NOT NULL"
    properties = [
        ("city", _json("c.slug")),
        ("as_of", "%(as_of_json)s::text"),
        ("known_at", "%(known_at_json)s::text"),
        ("status", _json("coalesce(p.status, 'unknown')")),
        ("controller", _json("p.controller")),
        ("contested_by", _json("p.contested_by")),
        ("since", _json("p.since")),
        ("event_id", _json("p.event_id")),
        ("version", f"coalesce({KNOWN_VERSION}, 0)::text"),
        ("name", _json("c.name")),
        ("province", _json("c.province")),
        ("lat", "c.lat_json"),
        ("lon", "c.lon_json"),
        ("population", _json("c.population")),
        ("source_name", _json(f"CASE WHEN {cause} THEN p.source_name END")),
        ("source_url", _json(f"CASE WHEN {cause} THEN p.source_url END")),
    ]
    parts = [_literal('{"type":"Feature","id":'), _json("c.slug")]
    parts += [_literal(',"geometry":{"type":"Point","coordinates":[')]
    parts += ["c.lon_json", _literal(","), "c.lat_json", _literal(']},"properties":{')]
    for n, (key, value) in enumerate(properties):
        parts += [_literal(f'{"," if n else ""}"{key}":'), value]
    parts += [_literal("}}")]
    return "concat(" + ", ".join(parts) + ")"  # one allocation, not one per `||`


def _literal(text: str) -> str:
    """SQL: a string literal of JSON punctuation, its braces doubled for `str.format`."""
    return "'" + text.replace("{", "{{").replace("}", "}}") + "'"


# The map layer in one statement on PostgreSQL: every city's feature, built and
# joined by the server, one text value back. The rows are sorted before the
# features are written (a sort of short keys in memory, not of the features),
# and aggregated in that order.
GEOJSON_ALL = (
    "SELECT convert_to("
    + _literal('{"type":"FeatureCollection","features":[')
    + " || coalesce(string_agg(feature, ','), '') || "
    + _literal("]}")
    + ", 'UTF8') AS body FROM (SELECT "
    + _feature().replace("p.", "c.")  # one row `c` holds the city's and the period's columns
    + " AS feature FROM (SELECT c.slug, c.name, c.province, c.lat, c.lon, c.population,"
    " c.version, c.version_at, c.city_id, p.status, p.controller, p.contested_by, p.since,"
    " p.event_id, p.source_name, p.source_url, "
    + _float("c.lat")
    + " AS lat_json, "
    + _float("c.lon")
    + " AS lon_json FROM {cities} c"
    " LEFT JOIN {periods} p ON p.city_id = c.city_id AND {every}"
    " ORDER BY c.slug OFFSET 0) c) features"
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


class CityDegraded(Exception):
    """The read model could not apply one of the city's events: its answers would be wrong."""

    def __init__(self, degraded: DegradedCity) -> None:
        super().__init__(
            f"{degraded.slug}'s read model is degraded since {degraded.noticed_at.isoformat()}: "
            f"event {degraded.event_id} could not be applied ({degraded.reason}); "
            "an operator must run `dateline projections rebuild`"
        )
        self.degraded = degraded


class ReadModel:
    """Answers queries from the bitemporal tables."""

    def __init__(
        self, datastore: SQLiteDatastore | PostgresDatastore, clock: Callable[[], datetime]
    ) -> None:
        self.datastore = datastore
        self.clock = clock
        self.dialect: Dialect = (
            SQLiteDialect()
            if isinstance(datastore, SQLiteDatastore)
            else PostgresDialect(datastore.schema)
        )
        s = self.dialect.sql
        self._status_one = s(STATUS_ONE)
        self._status_all = s(STATUS_ALL)
        self._geojson_all = s(GEOJSON_ALL)
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
        self._select_event = s(
            "SELECT " + FACT_COLUMNS + " FROM {facts} WHERE city_id = %(city)s "
            "AND version = %(version)s"
        )
        self._select_report = s(
            "SELECT " + FACT_COLUMNS + " FROM {facts} WHERE city_id = %(city)s "
            "AND report_id = %(report_id)s"
        )
        self._select_timeline = s(
            "SELECT " + PERIOD_COLUMNS + " FROM {periods} WHERE city_id = %(city)s "
            "AND known_from <= %(t)s AND (known_to IS NULL OR known_to > %(t)s) ORDER BY valid_from"
        )
        # One page of the timeline: a walk of the primary key (city_id, valid_from,
        # known_from) from `after`, stopped by LIMIT, whatever the history's length.
        self._select_timeline_page = s(
            "SELECT " + PERIOD_COLUMNS + " FROM {periods} WHERE city_id = %(city)s "
            "AND valid_from > %(after)s "
            "AND known_from <= %(t)s AND (known_to IS NULL OR known_to > %(t)s) "
            "ORDER BY valid_from LIMIT %(limit)s"
        )
        self._select_periods = s(
            "SELECT " + PERIOD_COLUMNS + " FROM {periods} WHERE city_id = %(city)s "
            "ORDER BY known_from, valid_from"
        )
        self._select_slugs = s("SELECT slug FROM {cities} ORDER BY slug")
        # Given events' sources: one primary-key probe each, whatever the log's size
        # (on PostgreSQL a LATERAL ... LIMIT 1, which the planner cannot turn into a
        # hash join over every fact).
        if isinstance(self.dialect, PostgresDialect):
            sources = (
                "SELECT w.slug, w.version, f.source_name, f.source_url, f.source_quote"
                " FROM unnest(%(slugs)s::text[], %(versions)s::bigint[]) AS w(slug, version)"
                " JOIN {cities} c ON c.slug = w.slug"
                " JOIN LATERAL (SELECT source_name, source_url, source_quote FROM {facts}"
                "  WHERE city_id = c.city_id AND version = w.version LIMIT 1) f ON true"
            )
        else:
            sources = (
                "SELECT w.slug, w.version, f.source_name, f.source_url, f.source_quote"
                " FROM (SELECT json_extract(j.value, '$[0]') AS slug,"
                "  json_extract(j.value, '$[1]') AS version FROM json_each(%(pairs)s) j) w"
                " JOIN {cities} c ON c.slug = w.slug"
                " JOIN {facts} f ON f.city_id = c.city_id AND f.version = w.version"
            )
        self._select_sources = s(
            "SELECT * FROM (" + sources + ") found WHERE found.source_name IS NOT NULL"
        )
        self._read_position = s(
            "SELECT notification_id, events FROM {tracking} WHERE projection = %(projection)s"
        )
        self._select_degraded = s(
            "SELECT slug, event_id, reason, noticed_at FROM {degraded} ORDER BY slug"
        )
        self._select_degraded_city = s(
            "SELECT slug, event_id, reason, noticed_at FROM {degraded} WHERE city_id = %(city)s"
        )

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        datastore = self.datastore
        if isinstance(datastore, SQLiteDatastore):
            with datastore.transaction(commit=False) as cursor:
                yield cursor
        else:
            with datastore.get_connection() as conn, conn.cursor() as cursor:
                yield cursor

    # ---------------------------------------------------------- projection
    def position(self) -> int:
        """The notification id up to which the tables reflect the log."""
        return self.progress()[0]

    def progress(self) -> tuple[int, int]:
        """(position, events reflected): one row read."""
        with self.cursor() as cursor:
            cursor.execute(self._read_position, {"projection": PROJECTION})
            row = cursor.fetchone()
        return (0, 0) if row is None else (int(row["notification_id"]), int(row["events"]))

    def degraded(self) -> list[DegradedCity]:
        with self.cursor() as cursor:
            cursor.execute(self._select_degraded)
            rows = cursor.fetchall()
        return [self._degraded(row) for row in rows]

    def check_healthy(self, slug: str) -> None:
        """Raise CityDegraded if the city's answers cannot be trusted."""
        with self.cursor() as cursor:
            cursor.execute(self._select_degraded_city, {"city": self.dialect.uid(city_id(slug))})
            row = cursor.fetchone()
        if row is not None:
            raise CityDegraded(self._degraded(row))

    def _degraded(self, row: Any) -> DegradedCity:
        noticed_at = self.dialect.load_instant(row["noticed_at"])
        assert noticed_at is not None
        return DegradedCity(row["slug"], row["event_id"], row["reason"], noticed_at)

    # --------------------------------------------------------------- queries
    def status(
        self, slug: str, as_of: date | None = None, known_at: datetime | None = None
    ) -> StatusView:
        """As `Dateline.status`: one indexed lookup, no aggregate loaded."""
        known_at = known_at or self.clock()
        on = as_of or known_at.date()
        uid = self.dialect.uid(city_id(slug))
        with self.cursor() as cursor:
            cursor.execute(self._status_one, self._point(on, known_at) | {"city": uid})
            row = cursor.fetchone()
        if row is None:
            raise CityNotFound(slug)
        if row["degraded_event"] is not None:
            noticed_at = self.dialect.load_instant(row["degraded_at"])
            assert noticed_at is not None
            raise CityDegraded(
                DegradedCity(slug, row["degraded_event"], row["degraded_reason"], noticed_at)
            )
        return self._status_view(row, on, known_at)

    def statuses(
        self, as_of: date | None = None, known_at: datetime | None = None
    ) -> list[StatusView]:
        """Every city's status, in slug order: one query."""
        known_at = known_at or self.clock()
        on = as_of or known_at.date()
        with self.cursor() as cursor:
            cursor.execute(self._status_all, self._point(on, known_at))
            rows = cursor.fetchall()
        return [self._status_view(row, on, known_at) for row in rows]

    def geojson(self, as_of: date | None, known_at: datetime) -> bytes | None:
        """`GET /status?format=geojson`'s body, built by PostgreSQL in one statement
        (None on SQLite: the caller builds it from `statuses` and `sources`)."""
        if not isinstance(self.dialect, PostgresDialect):
            return None
        on = as_of or known_at.date()
        params = self._point(on, known_at) | {
            "as_of_json": to_json(on).decode(),
            "known_at_json": to_json(known_at).decode(),
        }
        with self.cursor() as cursor:
            # bytea in binary: the server's bytes as they are, no text decoded
            cursor.execute(self._geojson_all, params, binary=True)
            row = cursor.fetchone()
        return bytes(row["body"])

    def changes(
        self, start: date, end: date, known_at: datetime | None = None
    ) -> list[LoggedEvent]:
        """Every event of every city with occurred_on in [start, end], as known at
        `known_at`: ordered by occurred_on, city, version. Registrations count
        (occurred_on = tracked_since); retractions have no date and appear as
        `retracted` on the event they withdrew, if recorded by `known_at`."""
        known_at = known_at or self.clock()
        params = {
            "start": self.dialect.day(start),
            "end": self.dialect.day(end),
            "t": self.dialect.instant(known_at),
        }
        with self.cursor() as cursor:
            cursor.execute(self._select_changes, params)
            rows = cursor.fetchall()
        return [self._logged(row, known_at) for row in rows]

    def sources(self, event_ids: Iterable[str]) -> dict[str, Source]:
        """The source of each given event (`slug-version`) that has one, by id: one
        query probing each event by its key, not a scan of the log."""
        pairs = []
        for event_id in event_ids:
            slug, _, version = event_id.rpartition("-")
            if slug and version.isdigit():
                pairs.append((slug, int(version)))
        if not pairs:
            return {}
        if isinstance(self.dialect, PostgresDialect):
            params: dict[str, Any] = {
                "slugs": [p[0] for p in pairs],
                "versions": [p[1] for p in pairs],
            }
        else:
            params = {"pairs": json.dumps(pairs)}
        with self.cursor() as cursor:
            cursor.execute(self._select_sources, params)
            rows = cursor.fetchall()
        return {
            f"{row['slug']}-{row['version']}": Source(
                row["source_name"], row["source_url"], row["source_quote"]
            )
            for row in rows
        }

    def history(self, slug: str, known_at: datetime | None = None) -> list[LoggedEvent]:
        """As `Dateline.history`: the city's log in recording order at `known_at`
        (None: all of it, even events stamped a moment past the clock)."""
        known_at = known_at or END_OF_TIME
        self.city(slug)
        self.check_healthy(slug)
        params = {"city": self.dialect.uid(city_id(slug)), "t": self.dialect.instant(known_at)}
        with self.cursor() as cursor:
            cursor.execute(self._select_history, params)
            rows = cursor.fetchall()
        return [self._logged(row, known_at) for row in rows]

    def timeline(
        self, slug: str, known_at: datetime | None = None
    ) -> tuple[CityView, list[ControlInterval]]:
        """As `Dateline.timeline`: the intervals as known at `known_at`."""
        known_at = known_at or self.clock()
        view = self.city(slug)
        self.check_healthy(slug)
        params = {"city": self.dialect.uid(city_id(slug)), "t": self.dialect.instant(known_at)}
        with self.cursor() as cursor:
            cursor.execute(self._select_timeline, params)
            rows = cursor.fetchall()
        periods = [self._period(row) for row in rows]
        return view, [ControlInterval(p.valid_from, p.valid_to, p.state) for p in periods]

    def timeline_page(
        self, slug: str, known_at: datetime, after: date | None, limit: int
    ) -> tuple[list[ControlInterval], bool, int]:
        """At most `limit` intervals as known at `known_at` starting after the day
        `after` (None: from the first), in world order, whether more follow, and
        the city's version as known then (its ETag): one indexed status lookup
        (which also refuses an unknown or degraded city) and one index walk of at
        most `limit` + 1 intervals."""
        version = self.status(slug, None, known_at).version
        params = {
            "city": self.dialect.uid(city_id(slug)),
            "t": self.dialect.instant(known_at),
            "after": self.dialect.day(after or date.min),
            "limit": limit + 1,
        }
        with self.cursor() as cursor:
            cursor.execute(self._select_timeline_page, params)
            rows = cursor.fetchall()
        periods = [self._period(row) for row in rows[:limit]]
        intervals = [ControlInterval(p.valid_from, p.valid_to, p.state) for p in periods]
        return intervals, len(rows) > limit, version

    def event(self, slug: str, version: int) -> LoggedEvent | None:
        """One event as the log shows it now (retraction attached)."""
        params = {"city": self.dialect.uid(city_id(slug)), "version": version}
        with self.cursor() as cursor:
            cursor.execute(self._select_event, params)
            row = cursor.fetchone()
        return None if row is None else self._logged(row, END_OF_TIME)

    def event_by_report(self, slug: str, report_id: str) -> LoggedEvent | None:
        params = {"city": self.dialect.uid(city_id(slug)), "report_id": report_id}
        with self.cursor() as cursor:
            cursor.execute(self._select_report, params)
            row = cursor.fetchone()
        return None if row is None else self._logged(row, END_OF_TIME)

    def city(self, slug: str) -> CityView:
        with self.cursor() as cursor:
            cursor.execute(self._select_city, {"slug": slug})
            row = cursor.fetchone()
        if row is None:
            raise CityNotFound(slug)
        return self._city_view(row)

    def city_slugs(self) -> list[str]:
        with self.cursor() as cursor:
            cursor.execute(self._select_slugs)
            return [row["slug"] for row in cursor.fetchall()]

    def periods(self, slug: str) -> list[ControlPeriod]:
        """Every row of the city, open and closed, by known_from then valid_from."""
        with self.cursor() as cursor:
            cursor.execute(self._select_periods, {"city": self.dialect.uid(city_id(slug))})
            rows = cursor.fetchall()
        return [
            ControlPeriod(
                slug, p.valid_from, p.valid_to, p.known_from, p.known_to, p.state, p.version
            )
            for p in map(self._period, rows)
        ]

    def _point(self, on: date, known_at: datetime) -> dict[str, Any]:
        return {"d": self.dialect.day(on), "t": self.dialect.instant(known_at)}

    def _city_view(self, row: Any) -> CityView:
        tracked_since = self.dialect.load_day(row["tracked_since"])
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
                self.dialect.load_day(row["since"]),
                row["event_id"],
            )
        version = row["known_version"]
        return StatusView(
            self._city_view(row), on, known_at, state, 0 if version is None else int(version)
        )

    def _logged(self, row: Any, known_at: datetime) -> LoggedEvent:
        store = self.dialect
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

    def _period(self, row: Any) -> PeriodRow:
        store = self.dialect
        valid_from = store.load_day(row["valid_from"])
        known_from = store.load_instant(row["known_from"])
        assert valid_from is not None and known_from is not None
        return PeriodRow(
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
        )
