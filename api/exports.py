"""Rows for data journalists: every city's status on a date, and the control events
over a range of days, flat, with coordinates and who says so.

The same rows feed `GET /status.csv`, `GET /changes.csv`, `dateline export` and
the GeoJSON properties. Columns are only ever added at the end, never renamed or
reordered. CSV is UTF-8, RFC 4180 (comma, double quotes, CRLF), header first;
an empty cell is a null.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from dateline.api.queries import ControlQueries, causing_sources
from dateline.domain.control import Source
from dateline.domain.log import LoggedEvent
from dateline.infrastructure.application import CityView, Dateline, StatusView

STATUS_COLUMNS = (
    "city",
    "name",
    "province",
    "country",
    "lat",
    "lon",
    "population",
    "as_of",
    "known_at",
    "status",
    "controller",
    "contested_by",
    "since",
    "event_id",
    "source_name",
    "source_url",
    "version",
)
CHANGES_COLUMNS = (
    "event_id",
    "city",
    "name",
    "province",
    "lat",
    "lon",
    "occurred_on",
    "type",
    "actor",
    "source_name",
    "source_url",
    "source_quote",
    "note",
    "reported_by",
    "recorded_at",
    "retracted_by",
    "retraction_reason",
)


def status_row(view: StatusView, source: Source | None) -> dict[str, Any]:
    state, city = view.state, view.city
    return {
        "city": city.slug,
        "name": city.name,
        "province": city.province,
        "country": city.country,
        "lat": city.lat,
        "lon": city.lon,
        "population": city.population,
        "as_of": view.as_of.isoformat(),
        "known_at": view.known_at.isoformat(),
        "status": state.status.value,
        "controller": state.controller,
        "contested_by": state.contested_by,
        "since": state.since.isoformat() if state.since else None,
        "event_id": state.event_id,
        "source_name": source.name if source else None,
        "source_url": source.url if source else None,
        "version": view.version,
    }


def status_rows(
    app: Dateline, queries: ControlQueries, as_of: date | None, known_at: datetime
) -> list[dict[str, Any]]:
    views = queries.all_statuses(as_of, known_at)
    causes = causing_sources(app, views)
    return [status_row(v, causes.get(v.state.event_id or "")) for v in views]


def change_row(event: LoggedEvent, city: CityView | None) -> dict[str, Any]:
    source, retracted = event.source, event.retracted
    return {
        "event_id": event.id,
        "city": event.city,
        "name": city.name if city else None,
        "province": city.province if city else None,
        "lat": city.lat if city else None,
        "lon": city.lon if city else None,
        "occurred_on": event.occurred_on.isoformat() if event.occurred_on else None,
        "type": event.type,
        "actor": event.actor,
        "source_name": source.name if source else None,
        "source_url": source.url if source else None,
        "source_quote": source.quote if source else None,
        "note": event.note,
        "reported_by": event.reported_by,
        "recorded_at": event.recorded_at.isoformat(),
        "retracted_by": retracted.retracted_by if retracted else None,
        "retraction_reason": retracted.reason if retracted else None,
    }


def change_rows(
    queries: ControlQueries,
    start: date,
    end: date,
    known_at: datetime,
    *,
    include_retracted: bool = False,
) -> list[dict[str, Any]]:
    events = queries.changes(start, end, known_at, include_retracted=include_retracted)
    cities = {v.city.slug: v.city for v in queries.all_statuses(None, known_at)}
    return [change_row(e, cities.get(e.city)) for e in events]


def to_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """RFC 4180: a header, then one line per row; None is an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return buffer.getvalue()
