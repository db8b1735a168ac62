"""Queries across cities, behind one small interface.

`GET /status`, `GET /cities`, `GET /changes`, their CSV exports and `dateline
export` read through `ControlQueries`, answered by the bitemporal read model
(`ReadModelQueries`, one query per request); `dateline projections check`
compares that read model with the aggregates' fold (`infrastructure.read_model.check`).

`changes` lists control events (Contested, Captured, Retaken) whose
`occurred_on` lies in [start, end], as the record stood at `known_at`. An
event retracted by then is left out unless `include_retracted` is set; it then
carries its `retracted` record. Registrations and Retracted events are not
changes in control and are never listed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from dateline.domain.control import Source
from dateline.domain.log import LoggedEvent
from dateline.infrastructure.application import Dateline, StatusView


class ControlQueries(Protocol):
    def all_statuses(self, as_of: date | None, known_at: datetime) -> list[StatusView]:
        """Every city's status at the end of `as_of` (default: known_at's day), by slug."""
        ...

    def changes(
        self, start: date, end: date, known_at: datetime, *, include_retracted: bool = False
    ) -> list[LoggedEvent]:
        """Control events with occurred_on in [start, end], in date order."""
        ...


class ReadModelQueries:
    """Answers from the bitemporal read model: one query per request."""

    def __init__(self, app: Dateline) -> None:
        self.read_model = app.read_model

    def all_statuses(self, as_of: date | None, known_at: datetime) -> list[StatusView]:
        return self.read_model.statuses(as_of, known_at)

    def changes(
        self, start: date, end: date, known_at: datetime, *, include_retracted: bool = False
    ) -> list[LoggedEvent]:
        return [
            event
            for event in self.read_model.changes(start, end, known_at)
            if event.is_control_event and (include_retracted or event.retracted is None)
        ]


def make_queries(app: Dateline) -> ControlQueries:
    return ReadModelQueries(app)


def causing_sources(app: Dateline, views: list[StatusView]) -> dict[str, Source]:
    """The source of the event that made each city's status what it is, by event
    id: one query probing those events by key. Registrations (no source) are left
    out. An event that made a status was recorded by the views' `known_at`, so its
    source is the one the record showed then (sources are never edited)."""
    return app.read_model.sources(
        {v.state.event_id for v in views if v.state.event_id and v.state.since}
    )
