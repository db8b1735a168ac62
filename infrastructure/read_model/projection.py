"""From a city's events to the read model's rows: no SQL, no store.

Each event comes with what it changed in its city's control intervals (the
domain's `IntervalChange`): the intervals it ended are closed on record time
(`known_to` = the event's record instant), the ones it began are opened. So a
write projects what it changed, never the whole city. A batch is projected in
log order; a row opened and closed within one batch is written already closed,
and rows already stored are closed by (city, valid_from) among the open ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any
from uuid import UUID

from dateline.domain.city import City, IntervalChange
from dateline.domain.control import ControlState
from dateline.domain.log import LoggedEvent, Retraction, log_entry


def refusal_reason(error: BaseException) -> str:
    """What a degraded mark records of the error: its type and first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:500]


@dataclass(frozen=True, slots=True)
class CityRow:
    city_id: UUID
    slug: str
    name: str
    province: str
    country: str
    lat: float
    lon: float
    population: int | None
    initial_controller: str
    tracked_since: date
    registered_at: datetime


@dataclass(slots=True)
class PeriodRow:
    """One rectangle: `state` held on [valid_from, valid_to) as known on
    [known_from, known_to); `version` is the city version that recorded it."""

    city_id: UUID
    valid_from: date
    valid_to: date | None
    known_from: datetime
    known_to: datetime | None
    state: ControlState
    version: int


@dataclass(frozen=True, slots=True)
class PeriodClose:
    """Close the stored open row of `city_id` that starts on `valid_from`."""

    city_id: UUID
    valid_from: date
    known_to: datetime


@dataclass(frozen=True, slots=True)
class RetractionMark:
    """Attach a retraction to a stored fact (the withdrawn event's row)."""

    city_id: UUID
    version: int
    retraction: Retraction


@dataclass(frozen=True, slots=True)
class DegradedMark:
    """A city whose events the read model could not apply, from this event on."""

    city_id: UUID
    slug: str
    event_id: str
    reason: str
    noticed_at: datetime


@dataclass(slots=True)
class Rows:
    """Everything a batch of events changes in the read model."""

    cities: list[CityRow] = field(default_factory=list)
    closes: list[PeriodClose] = field(default_factory=list)
    opens: list[PeriodRow] = field(default_factory=list)
    facts: dict[tuple[UUID, int], LoggedEvent] = field(default_factory=dict)
    retractions: list[RetractionMark] = field(default_factory=list)
    degraded: list[DegradedMark] = field(default_factory=list)
    events: int = 0

    def __bool__(self) -> bool:
        return self.events > 0


class MissingChange(Exception):
    """An event arrived without what it changed in the intervals (a city restored
    from a snapshot applies events without deriving them): nothing to project."""


class Projector:
    """Collects the rows for a batch of events, each with its interval change."""

    def __init__(self) -> None:
        self.rows = Rows()
        self._open: dict[tuple[UUID, date], PeriodRow] = {}

    def drain(self) -> Rows:
        """Take the rows no later event can change, for writing now: cities,
        facts (a later retraction of one becomes a `RetractionMark`), degraded
        marks and closed periods. Open periods stay, to be closed in memory."""
        rows = self.rows
        taken = Rows(
            cities=rows.cities,
            opens=[p for p in rows.opens if p.known_to is not None],
            facts=rows.facts,
            retractions=rows.retractions,
            degraded=rows.degraded,
            events=rows.events,
        )
        self.rows = Rows(opens=[p for p in rows.opens if p.known_to is None])
        return taken

    def skip(self, slug: str, event: Any, reason: str) -> None:
        """Count the event as reflected but write none of its rows: its city is
        degraded (marked here, with this event, if it was not already)."""
        cid: UUID = event.originator_id
        if all(m.city_id != cid for m in self.rows.degraded):
            event_id = f"{slug}-{event.originator_version}"
            self.rows.degraded.append(DegradedMark(cid, slug, event_id, reason, event.timestamp))
        self.rows.events += 1

    def add(self, slug: str, event: Any, change: IntervalChange | None) -> None:
        if change is None:
            raise MissingChange(f"{slug}-{event.originator_version}")
        rows = self.rows
        cid: UUID = event.originator_id
        version: int = event.originator_version
        recorded_at: datetime = event.timestamp
        if isinstance(event, City.Registered):
            rows.cities.append(
                CityRow(
                    cid,
                    event.slug,
                    event.name,
                    event.province,
                    event.country,
                    event.lat,
                    event.lon,
                    event.population,
                    event.initial_controller,
                    event.tracked_since,
                    recorded_at,
                )
            )
        logged = log_entry(slug, event)
        rows.facts[(cid, version)] = logged
        if isinstance(event, City.Retracted):
            target = int(event.event_id.rsplit("-", 1)[1])
            retraction = Retraction(logged.id, event.reason, event.retracted_by, recorded_at)
            if (cid, target) in rows.facts:
                rows.facts[(cid, target)] = replace(rows.facts[(cid, target)], retracted=retraction)
            else:
                rows.retractions.append(RetractionMark(cid, target, retraction))
        opened = self._open
        for interval in change.removed:
            pending = opened.pop((cid, interval.start), None)
            if pending is not None:
                pending.known_to = recorded_at
            else:
                rows.closes.append(PeriodClose(cid, interval.start, recorded_at))
        append = rows.opens.append
        for interval in change.added:
            row = PeriodRow(
                cid, interval.start, interval.end, recorded_at, None, interval.state, version
            )
            append(row)
            opened[(cid, interval.start)] = row
        rows.events += 1
