"""Queries across cities, behind one small interface.

`GET /status` and `GET /changes` read through `ControlQueries`. Today they fold
each city through the application (one replay per city, fine for tens of
cities); the read model of issue 4 will answer them from its tables. The swap
is the one line in `make_queries`.

`changes` lists control events (Contested, Captured, Retaken) whose
`occurred_on` lies in [start, end], as the record stood at `known_at`. An
event retracted by then is left out unless `include_retracted` is set; it then
carries its `retracted` record. Registrations and Retracted events are not
changes in control and are never listed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from domain.errors import CityNotFound
from domain.log import LoggedEvent
from infrastructure.application import Dateline, StatusView


class ControlQueries(Protocol):
    def all_statuses(self, as_of: date | None, known_at: datetime) -> list[StatusView]:
        """Every city's status at the end of `as_of` (default: known_at's day), by slug."""
        ...

    def changes(
        self, start: date, end: date, known_at: datetime, *, include_retracted: bool = False
    ) -> list[LoggedEvent]:
        """Control events with occurred_on in [start, end], in date order."""
        ...


class ApplicationQueries:
    """Answers by folding every city through the application's public methods."""

    def __init__(self, app: Dateline) -> None:
        self.app = app

    def all_statuses(self, as_of: date | None, known_at: datetime) -> list[StatusView]:
        views = []
        for slug in self.app.city_slugs():
            try:
                views.append(self.app.status(slug, as_of, known_at))
            except CityNotFound:  # listed by the index, gone from the store: skip it
                continue
        return views

    def changes(
        self, start: date, end: date, known_at: datetime, *, include_retracted: bool = False
    ) -> list[LoggedEvent]:
        found: list[LoggedEvent] = []
        for slug in self.app.city_slugs():
            try:
                history = self.app.history(slug, known_at)
            except CityNotFound:
                continue
            found.extend(
                event
                for event in history
                if event.is_control_event
                and event.occurred_on is not None
                and start <= event.occurred_on <= end
                and (include_retracted or event.retracted is None)
            )
        found.sort(key=lambda e: (e.occurred_on or start, e.city, e.version))
        return found


def make_queries(app: Dateline) -> ControlQueries:
    return ApplicationQueries(app)


def all_statuses(app: Dateline, as_of: date | None, known_at: datetime) -> list[StatusView]:
    return make_queries(app).all_statuses(as_of, known_at)


def changes(
    app: Dateline, start: date, end: date, known_at: datetime, *, include_retracted: bool = False
) -> list[LoggedEvent]:
    return make_queries(app).changes(start, end, known_at, include_retracted=include_retracted)
