"""The City aggregate: one event stream per city, its state a timeline in world order.

The state keeps control events sorted by (occurred_on, version). The library's
ordinary fold (recording order) therefore puts each backdated report where it
belongs, so snapshots and `version=N` reconstructions stay correct; "as of a
date" is a query on that state, never a re-sorted replay.

Record time is each event's `timestamp`. Commands take it as `recorded_at` (the
domain never reads a clock) and keep it strictly increasing within the city.
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.control import (
    ControlInterval,
    ControlState,
    EventType,
    Source,
    TimelineEntry,
    extend,
    fold,
    state_on,
)
from domain.errors import (
    AlreadyRetracted,
    ControlRuleViolation,
    InvalidReport,
    UnknownEvent,
)

MAX_TEXT = 200  # actors, source names: short labels, not prose
MAX_PROSE = 4000  # notes, quotes, reasons
MAX_POPULATION = 100_000_000  # larger than any city; catches typos and overflows
# No place on Earth is more than 14 hours ahead of UTC: a report is "in the
# future" only if its date has not yet begun anywhere.
LATEST_OFFSET = timedelta(hours=14)
ONE_MICROSECOND = timedelta(microseconds=1)


def city_id(slug: str) -> UUID:
    """Stream id derived from the slug, so registering twice collides."""
    return uuid5(NAMESPACE_URL, f"/dateline/cities/{slug}")


def event_id(slug: str, version: int) -> str:
    return f"{slug}-{version}"


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    event_id: str
    created: bool  # False: the report_id was already in the log


def _check_characters(field: str, value: str) -> None:
    """Refuse what no reporter means to type and some stores cannot hold:
    control characters (NUL included) and lone UTF-16 surrogates."""
    for char in value:
        code = ord(char)
        if (code < 32 and char not in "\n\t") or code == 127 or 0xD800 <= code <= 0xDFFF:
            raise InvalidReport(field, f"{field} contains an unprintable character (U+{code:04X})")


def _clean_label(field: str, value: str) -> str:
    _check_characters(field, value.replace("\n", " "))
    cleaned = " ".join(value.split())
    if not cleaned:
        raise InvalidReport(field, f"{field} must not be empty")
    if len(cleaned) > MAX_TEXT:
        raise InvalidReport(field, f"{field} is longer than {MAX_TEXT} characters")
    return cleaned


def _clean_prose(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    _check_characters(field, value)
    cleaned = value.strip()
    if len(cleaned) > MAX_PROSE:
        raise InvalidReport(field, f"{field} is longer than {MAX_PROSE} characters")
    return cleaned or None


class City(Aggregate):
    """A city whose control is told by Contested, Captured and Retaken reports."""

    class Registered(Aggregate.Created):
        slug: str
        name: str
        province: str
        country: str
        lat: float
        lon: float
        population: int | None
        initial_controller: str
        tracked_since: date

    class ControlEvent(Aggregate.Event):
        occurred_on: date
        actor: str
        source_name: str
        source_url: str | None
        source_quote: str | None
        note: str | None
        report_id: str | None
        reported_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate._record_control_event(self)

    class Contested(ControlEvent):
        pass

    class Captured(ControlEvent):
        pass

    class Retaken(ControlEvent):
        pass

    class Retracted(Aggregate.Event):
        event_id: str
        reason: str
        retracted_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate._record_retraction(self)

    def __init__(
        self,
        slug: str,
        name: str,
        province: str,
        country: str,
        lat: float,
        lon: float,
        population: int | None,
        initial_controller: str,
        tracked_since: date,
    ) -> None:
        self.slug = slug
        self.name = name
        self.province = province
        self.country = country
        self.lat = lat
        self.lon = lon
        self.population = population
        self.initial_controller = initial_controller
        self.tracked_since = tracked_since
        # JSON-shaped state (lists, dicts, str keys) so snapshots round-trip.
        # timeline: active control events, sorted: [occurred_on, version, type, actor]
        self.timeline: list[list[Any]] = []
        # every control event ever recorded, retracted or not: id -> same list
        self.control_events: dict[str, list[Any]] = {}
        self.retractions: dict[str, str] = {}  # event id -> reason
        self.report_ids: dict[str, str] = {}  # report id -> event id

    # ----------------------------------------------------------------- commands
    @classmethod
    def register(
        cls,
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
        recorded_at: datetime,
    ) -> City:
        cls.check_recorded_at(recorded_at)
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            raise InvalidReport("lat", f"lat {lat} is not between -90 and 90")
        if not (math.isfinite(lon) and -180 <= lon <= 180):
            raise InvalidReport("lon", f"lon {lon} is not between -180 and 180")
        if population is not None and not 0 <= population <= MAX_POPULATION:
            raise InvalidReport(
                "population", f"population must be between 0 and {MAX_POPULATION:,}"
            )
        if tracked_since > cls.latest_possible_day(recorded_at):
            raise InvalidReport("tracked_since", f"tracked_since {tracked_since} is in the future")
        return cls._create(
            cls.Registered,
            id=city_id(slug),
            timestamp=recorded_at,
            slug=slug,
            name=_clean_label("name", name),
            province=_clean_label("province", province),
            country=_clean_label("country", country),
            lat=float(lat),
            lon=float(lon),
            population=population,
            initial_controller=_clean_label("initial_controller", initial_controller),
            tracked_since=tracked_since,
        )

    def report(
        self,
        event_type: EventType,
        *,
        occurred_on: date,
        actor: str,
        source: Source,
        reported_by: str,
        recorded_at: datetime,
        note: str | None = None,
        report_id: str | None = None,
    ) -> ReportOutcome:
        """Append a control event, or return the original if `report_id` is known."""
        actor = _clean_label("actor", actor)
        if report_id is not None:
            report_id = _clean_label("report_id", report_id)
            if report_id in self.report_ids:
                return self._repeat_of(report_id, event_type, occurred_on, actor)
        self.check_occurred_on(occurred_on, recorded_at)
        source_name = _clean_label("source.name", source.name)
        candidate = TimelineEntry(
            occurred_on, self.version + 1, event_type, actor, event_id(self.slug, self.version + 1)
        )
        self.check_rules([*self._entries(), candidate], subject=candidate)
        event_class = {
            EventType.CONTESTED: self.Contested,
            EventType.CAPTURED: self.Captured,
            EventType.RETAKEN: self.Retaken,
        }[event_type]
        self.trigger_event(
            event_class,
            timestamp=self._next_timestamp(recorded_at),
            occurred_on=occurred_on,
            actor=actor,
            source_name=source_name,
            source_url=_clean_prose("source.url", source.url),
            source_quote=_clean_prose("source.quote", source.quote),
            note=_clean_prose("note", note),
            report_id=report_id,
            reported_by=_clean_label("reported_by", reported_by),
        )
        return ReportOutcome(candidate.event_id, created=True)

    def retract(
        self, target_event_id: str, *, reason: str, retracted_by: str, recorded_at: datetime
    ) -> None:
        """Withdraw a control event; refused if a later event would lose its footing."""
        if target_event_id not in self.control_events:
            raise UnknownEvent(self.slug, target_event_id)
        if target_event_id in self.retractions:
            raise AlreadyRetracted(target_event_id, self.retractions[target_event_id])
        reason = _clean_prose("reason", reason) or ""
        if not reason:
            raise InvalidReport("reason", "reason must not be empty")
        entries = self._entries()
        target = next(e for e in entries if e.event_id == target_event_id)
        remaining = [e for e in entries if e is not target]
        self.check_rules(remaining, subject=None, retracting=target)
        self.trigger_event(
            self.Retracted,
            timestamp=self._next_timestamp(recorded_at),
            event_id=target_event_id,
            reason=reason,
            retracted_by=_clean_label("retracted_by", retracted_by),
        )

    # ------------------------------------------------------------------ checks
    @staticmethod
    def check_recorded_at(recorded_at: datetime) -> None:
        if recorded_at.tzinfo is None:
            raise ValueError("recorded_at must be timezone-aware")

    @staticmethod
    def latest_possible_day(recorded_at: datetime) -> date:
        return (recorded_at.astimezone(UTC) + LATEST_OFFSET).date()

    def check_occurred_on(self, occurred_on: date, recorded_at: datetime) -> None:
        self.check_recorded_at(recorded_at)
        if occurred_on < self.tracked_since:
            raise InvalidReport(
                "occurred_on",
                f"occurred_on {occurred_on} is before {self.name}'s record begins "
                f"({self.tracked_since})",
            )
        if occurred_on > self.latest_possible_day(recorded_at):
            raise InvalidReport("occurred_on", f"occurred_on {occurred_on} is in the future")

    def check_rules(
        self,
        entries: list[TimelineEntry],
        *,
        subject: TimelineEntry | None,
        retracting: TimelineEntry | None = None,
    ) -> list[ControlInterval]:
        entries.sort(key=lambda e: (e.occurred_on, e.version))
        try:
            return self._fold(entries, subject_event_id=subject.event_id if subject else None)
        except ControlRuleViolation as broken:
            if not broken.is_later_event:
                raise
            changed = subject or retracting
            verb = "reporting" if subject else "retracting"
            change = f"{verb} {changed.describe()}" if changed else "this change"
            raise ControlRuleViolation(
                broken.rule,
                f"{change} would break later event {broken.event_id}: {broken.message}",
                broken.event_id,
                is_later_event=True,
            ) from None

    # ----------------------------------------------------------------- queries
    def status_on(self, on: date) -> ControlState:
        return state_on(self.intervals(), self.tracked_since, on)

    def intervals(self) -> list[ControlInterval]:
        return self._fold(self._entries(), subject_event_id=None)

    def intervals_after_latest(self, before: Sequence[ControlInterval]) -> list[ControlInterval]:
        """`intervals()`, given the intervals just before the latest event applied.

        When that event is a control event last in world order (most reports),
        only the tail can change: one rule step, not a fold of the whole city.
        Projections that follow the log event by event use this."""
        latest = self.timeline[-1] if self.timeline else None
        if not before or latest is None or latest[1] != self.version:
            return self.intervals()
        on, version, kind, actor = latest
        holders = {self.initial_controller}
        holders.update(e[3] for e in self.timeline[:-1] if e[2] != EventType.CONTESTED.value)
        entry = TimelineEntry(on, version, EventType(kind), actor, event_id(self.slug, version))
        return extend(self.name, before, holders, entry)

    def is_retracted(self, control_event_id: str) -> bool:
        return control_event_id in self.retractions

    # -------------------------------------------------------------- internals
    def _fold(
        self, entries: list[TimelineEntry], *, subject_event_id: str | None
    ) -> list[ControlInterval]:
        return fold(
            self.name,
            self.initial_controller,
            self.tracked_since,
            event_id(self.slug, 1),
            entries,
            subject_event_id=subject_event_id,
        )

    def _entries(self) -> list[TimelineEntry]:
        return [
            TimelineEntry(on, version, EventType(kind), actor, event_id(self.slug, version))
            for on, version, kind, actor in self.timeline
        ]

    def _repeat_of(
        self, report_id: str, event_type: EventType, occurred_on: date, actor: str
    ) -> ReportOutcome:
        original_id = self.report_ids[report_id]
        on, _, kind, original_actor = self.control_events[original_id]
        if (kind, on, original_actor) != (event_type.value, occurred_on, actor):
            raise InvalidReport(
                "report_id",
                f"report_id {report_id!r} was already used for {original_id} "
                f"({kind} by {original_actor} on {on}); use a new report_id",
            )
        return ReportOutcome(original_id, created=False)

    def _next_timestamp(self, recorded_at: datetime) -> datetime:
        self.check_recorded_at(recorded_at)
        return max(recorded_at, self.modified_on + ONE_MICROSECOND)

    def _record_control_event(self, event: City.ControlEvent) -> None:
        entry = [event.occurred_on, event.originator_version, self._type_of(event), event.actor]
        insort(self.timeline, entry)
        identifier = event_id(self.slug, event.originator_version)
        self.control_events[identifier] = entry
        if event.report_id is not None:
            self.report_ids[event.report_id] = identifier

    def _record_retraction(self, event: City.Retracted) -> None:
        self.retractions[event.event_id] = event.reason
        version = self.control_events[event.event_id][1]
        self.timeline = [e for e in self.timeline if e[1] != version]

    @staticmethod
    def _type_of(event: City.ControlEvent) -> str:
        return type(event).__name__
