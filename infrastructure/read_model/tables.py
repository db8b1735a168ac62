"""The read model's tables and the SQL each store speaks to them.

Tables (migrations 0003, 0004, 0007), the same on SQLite and PostgreSQL:

- `dateline_control_periods`: rectangles, a valid period [valid_from, valid_to)
  on the world's calendar times a record period [known_from, known_to) on record
  time (NULL end = open); "as of D, as known at T" is the row containing (D, T).
  Rows are only inserted, or closed by setting `known_to`. Each carries the
  source of the event in `event_id` (`source_name`, `source_url`), copied from
  the facts when it is inserted.
- `dateline_event_facts`: one row per event as the log shows it, retraction
  details attached to the withdrawn event.
- `dateline_rm_cities`: each city's descriptive fields, and its highest version
  in the read model with when it was recorded (`version`, `version_at`).
- `dateline_projection_tracking`: the notification id up to which every event is
  reflected, and how many events that is.
- `dateline_projection_degraded`: cities whose events the read model could not
  apply, with the event and the reason.

Statements are written once with psycopg's placeholders (`%s`, `%(name)s`);
the SQLite dialect turns them into sqlite3's (`?`, `:name`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, cast
from uuid import UUID

from dateline.domain.control import Source
from dateline.domain.log import LoggedEvent
from dateline.infrastructure.read_model.projection import Rows

PROJECTION = "read_model"  # the row in dateline_projection_tracking
TABLES = {
    "periods": "dateline_control_periods",
    "facts": "dateline_event_facts",
    "cities": "dateline_rm_cities",
    "tracking": "dateline_projection_tracking",
    "degraded": "dateline_projection_degraded",
}
PLAIN_CONTAINS = (
    "p.valid_from <= %(d)s AND (p.valid_to IS NULL OR p.valid_to > %(d)s) "
    "AND p.known_from <= %(t)s AND (p.known_to IS NULL OR p.known_to > %(t)s)"
)
# Each row's rectangle as a box (migration 0007's GiST index: the same text), and
# the point (D, T) as a box: `{box} @> {point}` is an index search for every row
# containing (D, T). Boxes are closed: PLAIN_CONTAINS beside it keeps the ends open.
PERIOD_BOX = (
    "box(point((p.valid_from - DATE '2000-01-01')::float8, "
    "extract(epoch FROM p.known_from - TIMESTAMPTZ 'epoch')::float8), "
    "point(coalesce(p.valid_to - DATE '2000-01-01', 1000000000)::float8, "
    "coalesce(extract(epoch FROM p.known_to - TIMESTAMPTZ 'epoch'), 1e15)::float8))"
)
POINT_BOX = (
    "box(point((%(d)s::date - DATE '2000-01-01')::float8, "
    "extract(epoch FROM %(t)s::timestamptz - TIMESTAMPTZ 'epoch')::float8), "
    "point((%(d)s::date - DATE '2000-01-01')::float8, "
    "extract(epoch FROM %(t)s::timestamptz - TIMESTAMPTZ 'epoch')::float8))"
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


def sqlite_instant(moment: datetime) -> str:
    """Fixed-width UTC text, so SQLite compares instants as strings correctly."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def event_version(event_id: str | None) -> int | None:
    """The version in an event id `slug-version` (None for none)."""
    if not event_id:
        return None
    version = event_id.rpartition("-")[2]
    return int(version) if version.isdigit() else None


def fresh(name: str, suffix: str) -> str:
    """The table a rebuild fills instead of `name`; the tracking row stays put."""
    return name if name == TABLES["tracking"] else name + suffix


def marks(n: int) -> str:
    return ", ".join(["%s"] * n)


class Dialect:
    """What differs between SQLite and PostgreSQL: table names, placeholders, values."""

    kind: str
    contains: str  # the point-in-rectangle predicate on `p`, params %(d)s and %(t)s
    every: str  # the same, written to find every city's row at once
    for_update: str  # appended to the tracking row's read inside a write

    def sql(self, text: str) -> str:
        tables = {k: self.table(v) for k, v in TABLES.items()}
        return text.format(**tables, contains=self.contains, every=self.every)

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


class SQLiteDialect(Dialect):
    kind = "sqlite"
    contains = PLAIN_CONTAINS
    every = PLAIN_CONTAINS
    for_update = ""

    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix  # "_next": the fresh tables a rebuild fills

    def sql(self, text: str) -> str:
        return re.sub(r"%\((\w+)\)s", r":\1", super().sql(text)).replace("%s", "?")

    def table(self, name: str) -> str:
        return fresh(name, self.suffix)

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


class PostgresDialect(Dialect):
    kind = "postgresql"
    # One probe of the GiST index behind the exclusion constraint.
    contains = (
        "daterange(p.valid_from, p.valid_to) @> %(d)s::date "
        "AND tstzrange(p.known_from, p.known_to) @> %(t)s::timestamptz"
    )
    # One search of migration 0007's index; the plain predicates keep the ends open.
    every = PERIOD_BOX + " @> " + POINT_BOX + " AND " + PLAIN_CONTAINS
    for_update = " FOR UPDATE"

    def __init__(self, schema: str, suffix: str = "") -> None:
        self.schema = schema
        self.suffix = suffix  # "_next": the fresh tables a rebuild fills

    def table(self, name: str) -> str:
        return f'"{self.schema}".{fresh(name, self.suffix)}'

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


class TableWriter:
    """Writes a batch's rows with the cursor of the transaction that holds it."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = d = dialect
        s = d.sql
        self.close_period = s(
            "UPDATE {periods} SET known_to = %s "
            "WHERE city_id = %s AND valid_from = %s AND known_to IS NULL"
        )
        # The causing event's source, from the facts (written first in the batch).
        source = "(SELECT {} FROM {{facts}} WHERE city_id = %s AND version = %s)"
        self.insert_period = s(
            f"INSERT INTO {{periods}} ({PERIOD_COLUMNS}, source_name, source_url) "
            f"VALUES ({marks(11)}, {source.format('source_name')}, {source.format('source_url')})"
        )
        self.set_version = s("UPDATE {cities} SET version = %s, version_at = %s WHERE city_id = %s")
        self.insert_city = s(f"INSERT INTO {{cities}} ({CITY_COLUMNS}) VALUES ({marks(11)})")
        self.insert_fact = s(f"INSERT INTO {{facts}} ({FACT_COLUMNS}) VALUES ({marks(19)})")
        self.retract_fact = s(
            "UPDATE {facts} SET retracted_in = %s, retraction_reason = %s, retracted_by = %s, "
            "retracted_at = %s WHERE city_id = %s AND version = %s"
        )
        self.select_position = s(
            "SELECT notification_id, events FROM {tracking} WHERE projection = %s"
        )
        self.lock_position = self.select_position + d.for_update
        self.set_position = s(
            "UPDATE {tracking} SET notification_id = %s, events = events + %s WHERE projection = %s"
        )
        self.reset_position = s(
            "UPDATE {tracking} SET notification_id = %s, events = %s WHERE projection = %s"
        )
        self.insert_degraded = s(
            "INSERT INTO {degraded} (city_id, slug, event_id, reason, noticed_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (city_id) DO NOTHING"
        )
        self.select_projected = s("SELECT version FROM {facts} WHERE city_id = %s AND version = %s")

    def write(self, cursor: Any, rows: Rows) -> None:
        """Close before inserting: the exclusion constraint never sees an overlap."""
        self.close_periods(cursor, rows)
        if rows.cities:
            self._run(cursor, self.insert_city, [self.city_row(c) for c in rows.cities])
        if rows.facts:
            self._run(
                cursor,
                self.insert_fact,
                [self.fact_row(cid, e) for (cid, _), e in rows.facts.items()],
            )
        if rows.opens:  # after the facts: a row's source may be an event of this batch
            self._run(cursor, self.insert_period, [self.opened_row(p) for p in rows.opens])
        self.set_versions(cursor, rows)
        for mark in rows.degraded:
            cursor.execute(
                self.insert_degraded,
                self.degraded_row(
                    mark.city_id, mark.slug, mark.event_id, mark.reason, mark.noticed_at
                ),
            )
        self.retract_facts(cursor, rows)

    def close_periods(self, cursor: Any, rows: Rows) -> None:
        """End the rectangles the batch replaced (before any insert)."""
        if rows.closes:
            d = self.dialect
            self._run(
                cursor,
                self.close_period,
                [
                    (d.instant(c.known_to), d.uid(c.city_id), d.day(c.valid_from))
                    for c in rows.closes
                ],
            )

    def retract_facts(self, cursor: Any, rows: Rows) -> None:
        """Mark the facts the batch's retractions withdrew."""
        if rows.retractions:
            d = self.dialect
            self._run(
                cursor,
                self.retract_fact,
                [
                    (
                        m.retraction.event_id,
                        m.retraction.reason,
                        m.retraction.retracted_by,
                        d.instant(m.retraction.recorded_at),
                        d.uid(m.city_id),
                        m.version,
                    )
                    for m in rows.retractions
                ],
            )

    def city_row(self, c: Any) -> tuple[Any, ...]:
        d = self.dialect
        return (
            d.uid(c.city_id),
            c.slug,
            c.name,
            c.province,
            c.country,
            c.lat,
            c.lon,
            c.population,
            c.initial_controller,
            d.day(c.tracked_since),
            d.instant(c.registered_at),
        )

    def set_versions(self, cursor: Any, rows: Rows) -> None:
        """Each city of the batch's facts: its highest version and when it was recorded."""
        if not rows.facts:
            return
        d = self.dialect
        latest: dict[UUID, LoggedEvent] = {}
        for (cid, _), e in rows.facts.items():
            if cid not in latest or e.version > latest[cid].version:
                latest[cid] = e
        self._run(
            cursor,
            self.set_version,
            [(e.version, d.instant(e.recorded_at), d.uid(cid)) for cid, e in latest.items()],
        )

    def _run(self, cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor.executemany(statement, rows)

    def period_row(self, p: Any) -> tuple[Any, ...]:
        d = self.dialect
        return (
            d.uid(p.city_id),
            d.day(p.valid_from),
            d.day(p.valid_to),
            d.instant(p.known_from),
            d.instant(p.known_to),
            p.state.status.value,
            p.state.controller,
            p.state.contested_by,
            d.day(p.state.since),
            p.state.event_id,
            p.version,
        )

    def opened_row(self, p: Any) -> tuple[Any, ...]:
        """`period_row` and the key of the causing event's fact, twice (name, URL)."""
        cause = event_version(p.state.event_id)
        uid = self.dialect.uid(p.city_id)
        return (*self.period_row(p), uid, cause, uid, cause)

    def fact_row(self, cid: UUID, e: LoggedEvent) -> tuple[Any, ...]:
        d = self.dialect
        source = e.source or Source("")
        r = e.retracted
        return (
            d.uid(cid),
            e.version,
            e.city,
            e.type,
            d.instant(e.recorded_at),
            d.day(e.occurred_on),
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
            d.instant(r.recorded_at) if r else None,
        )

    def degraded_row(
        self, city_id: UUID, slug: str, event_id: str, reason: str, at: datetime
    ) -> Sequence[Any]:
        d = self.dialect
        return (d.uid(city_id), slug, event_id, reason[:2000], d.instant(at))


PERIOD_TYPES = "uuid, date, date, timestamptz, timestamptz, text, text, text, date, text, bigint"
# A new period row and its cause's version (the SQLite writer's key pairs, once).
OPENED_COLUMNS = PERIOD_COLUMNS + ", cause"
OPENED_TYPES = PERIOD_TYPES + ", bigint"
CITY_TYPES = "uuid, text, text, text, text, float8, float8, bigint, text, date, timestamptz"
FACT_TYPES = (
    "uuid, bigint, text, text, timestamptz, date, text, text, text, text, text, text, text, "
    "text, text, text, text, text, timestamptz"
)


def _qualified(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def _unnest(columns: str, types: str) -> str:
    # %b: arrays sent in binary, no text quoting of every element.
    arrays = ", ".join(f"%b::{t.strip()}[]" for t in types.split(","))
    return f"SELECT * FROM unnest({arrays}) AS r({columns})"


class PostgresTableWriter(TableWriter):
    """One statement per kind of row, with arrays (unnest), each executed once and
    not prepared: it runs in the append's pipeline, where a statement prepared
    in an aborted pipeline would be missing from the server on the next use."""

    def __init__(self, dialect: PostgresDialect) -> None:
        super().__init__(dialect)
        s = dialect.sql
        self.close_period = s(
            "UPDATE {periods} p SET known_to = c.known_to FROM unnest("
            "%b::timestamptz[], %b::uuid[], %b::date[]) AS c(known_to, city_id, valid_from) "
            "WHERE p.city_id = c.city_id AND p.valid_from = c.valid_from AND p.known_to IS NULL"
        )
        self.insert_period = s(
            f"INSERT INTO {{periods}} ({PERIOD_COLUMNS}, source_name, source_url) "
            f"SELECT {_qualified('r', PERIOD_COLUMNS)}, f.source_name, f.source_url "
            f"FROM ({_unnest(OPENED_COLUMNS, OPENED_TYPES)}) r"
            " LEFT JOIN {facts} f ON f.city_id = r.city_id AND f.version = r.cause"
        )
        self.set_version = s(
            "UPDATE {cities} c SET version = r.version, version_at = r.version_at FROM unnest("
            "%b::bigint[], %b::timestamptz[], %b::uuid[]) AS r(version, version_at, city_id) "
            "WHERE c.city_id = r.city_id"
        )
        self.insert_city = s(
            f"INSERT INTO {{cities}} ({CITY_COLUMNS}) {_unnest(CITY_COLUMNS, CITY_TYPES)}"
        )
        self.insert_fact = s(
            f"INSERT INTO {{facts}} ({FACT_COLUMNS}) {_unnest(FACT_COLUMNS, FACT_TYPES)}"
        )
        self.retract_fact = s(
            "UPDATE {facts} f SET retracted_in = r.retracted_in, "
            "retraction_reason = r.reason, retracted_by = r.retracted_by, "
            "retracted_at = r.retracted_at FROM unnest(%b::text[], %b::text[], %b::text[], "
            "%b::timestamptz[], %b::uuid[], %b::bigint[]) "
            "AS r(retracted_in, reason, retracted_by, retracted_at, city_id, version) "
            "WHERE f.city_id = r.city_id AND f.version = r.version"
        )

    def opened_row(self, p: Any) -> tuple[Any, ...]:
        return (*self.period_row(p), event_version(p.state.event_id))

    def _run(self, cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        columns = [list(column) for column in zip(*rows, strict=True)]
        cursor.execute(statement, columns, prepare=False)
