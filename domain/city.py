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
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as AggregateSnapshot

from dateline.domain.control import (
    ControlInterval,
    ControlState,
    EventType,
    Source,
    TimelineEntry,
    fold,
    fold_from,
    initial_interval,
    reopen_before,
    state_on,
)
from dateline.domain.errors import (
    AlreadyRetracted,
    ControlRuleViolation,
    InvalidReport,
    UnknownEvent,
)

MAX_TEXT = 200  # actors, source names: short labels, not prose
MAX_PROSE = 4000  # notes, quotes, reasons
MAX_POPULATION = 100_000_000  # larger than any city; catches typos and overflows
MAX_LATITUDE = 90  # degrees, north or south
MAX_LONGITUDE = 180  # degrees, east or west
# No place on Earth is more than 14 hours ahead of UTC: a report is "in the
# future" only if its date has not yet begun anywhere.
LATEST_OFFSET = timedelta(hours=14)
ONE_MICROSECOND = timedelta(microseconds=1)
ONE_DAY = timedelta(days=1)


# A timeline entry's stored type (its value) -> the EventType, without the enum's call.
_EVENT_TYPES: dict[str, EventType] = {t.value: t for t in EventType}


def city_id(slug: str) -> UUID:
    """Stream id derived from the slug, so registering twice collides."""
    return uuid5(NAMESPACE_URL, f"/dateline/cities/{slug}")


def event_id(slug: str, version: int) -> str:
    return f"{slug}-{version}"


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    event_id: str
    created: bool  # False: the report_id was already in the log


@dataclass(frozen=True, slots=True)
class IntervalChange:
    """What one event changed in a city's control intervals: the intervals it
    ended (as they were) and the ones it began. Unchanged intervals are in neither."""

    removed: tuple[ControlInterval, ...]
    added: tuple[ControlInterval, ...]


@dataclass(slots=True)
class _Derived:
    """State computed from the timeline and kept up to date event by event, so a
    command costs what it changes: never snapshotted, rebuilt by a fold if absent."""

    intervals: list[ControlInterval]
    first_held: dict[str, date]  # actor -> first day it captured or retook the city
    # A command's re-fold, checked before its event exists, reused when it applies:
    # (version, intervals kept, the new tail).
    planned: tuple[int, int, list[ControlInterval]] | None = None
    # What each event applied since the last `take_interval_changes` changed.
    changes: dict[int, IntervalChange] = field(default_factory=dict)


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

    class Snapshot(AggregateSnapshot):
        """The aggregate's recorded state only: what is derived from it is not kept."""

        @classmethod
        def take(cls, aggregate: Any) -> Any:
            snapshot = super().take(aggregate)
            snapshot.state.pop("_derived", None)
            return snapshot

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
        self._derived: _Derived | None = _Derived(
            [initial_interval(initial_controller, tracked_since, event_id(slug, 1))], {}
        )
        self._derived.changes[1] = IntervalChange((), tuple(self._derived.intervals))

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
        if not (math.isfinite(lat) and -MAX_LATITUDE <= lat <= MAX_LATITUDE):
            raise InvalidReport(
                "lat", f"lat {lat} is not between -{MAX_LATITUDE} and {MAX_LATITUDE}"
            )
        if not (math.isfinite(lon) and -MAX_LONGITUDE <= lon <= MAX_LONGITUDE):
            raise InvalidReport(
                "lon", f"lon {lon} is not between -{MAX_LONGITUDE} and {MAX_LONGITUDE}"
            )
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
        """Append a control event, or return the original if `report_id` is known.

        The rules are checked from the report's date on: a report dated after
        every other event is one rule step, a backdated one re-checks the events
        after its date."""
        actor = _clean_label("actor", actor)
        if report_id is not None:
            report_id = _clean_label("report_id", report_id)
            if report_id in self.report_ids:
                return self._repeat_of(report_id, event_type, occurred_on, actor)
        self.check_occurred_on(occurred_on, recorded_at)
        source_name = _clean_label("source.name", source.name)
        version = self.version + 1
        candidate = TimelineEntry(
            occurred_on, version, event_type, actor, event_id(self.slug, version)
        )
        later = self._entries_from(occurred_on)
        # The candidate is the latest recorded: it folds after that day's other events.
        same_day = bisect_left(later, occurred_on + ONE_DAY, key=lambda e: e.occurred_on)
        later.insert(same_day, candidate)
        planned = self._refold(occurred_on, later, subject=candidate, verb="reporting")
        event_class = {
            EventType.CONTESTED: self.Contested,
            EventType.CAPTURED: self.Captured,
            EventType.RETAKEN: self.Retaken,
        }[event_type]
        fields = {
            "source_url": _clean_prose("source.url", source.url),
            "source_quote": _clean_prose("source.quote", source.quote),
            "note": _clean_prose("note", note),
            "reported_by": _clean_label("reported_by", reported_by),
        }
        timestamp = self._next_timestamp(recorded_at)
        self._plan(version, planned)
        self.trigger_event(
            event_class,
            timestamp=timestamp,
            occurred_on=occurred_on,
            actor=actor,
            source_name=source_name,
            report_id=report_id,
            **fields,
        )
        return ReportOutcome(candidate.event_id, created=True)

    def retract(
        self, target_event_id: str, *, reason: str, retracted_by: str, recorded_at: datetime
    ) -> None:
        """Withdraw a control event; refused if a later event would lose its footing.
        Only the events from the withdrawn one's date on are re-checked."""
        if target_event_id not in self.control_events:
            raise UnknownEvent(self.slug, target_event_id)
        if target_event_id in self.retractions:
            raise AlreadyRetracted(target_event_id, self.retractions[target_event_id])
        reason = _clean_prose("reason", reason) or ""
        if not reason:
            raise InvalidReport("reason", "reason must not be empty")
        on, version, kind, actor = self.control_events[target_event_id]
        target = TimelineEntry(on, version, EventType(kind), actor, target_event_id)
        remaining = [e for e in self._entries_from(on) if e.version != version]
        planned = self._refold(on, remaining, subject=target, verb="retracting")
        retracted_by = _clean_label("retracted_by", retracted_by)
        timestamp = self._next_timestamp(recorded_at)
        self._plan(self.version + 1, planned)
        self.trigger_event(
            self.Retracted,
            timestamp=timestamp,
            event_id=target_event_id,
            reason=reason,
            retracted_by=retracted_by,
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

    # ----------------------------------------------------------------- queries
    def status_on(self, on: date) -> ControlState:
        return state_on(self.intervals(), self.tracked_since, on)

    def intervals(self) -> list[ControlInterval]:
        """The control intervals in world order (a copy)."""
        return list(self._fold_state().intervals)

    @property
    def last_change(self) -> IntervalChange | None:
        """What the latest applied event changed in the intervals; None when the
        city was restored from a snapshot and has not applied an event since."""
        derived: _Derived | None = getattr(self, "_derived", None)
        if derived is None or not derived.changes:
            return None
        return derived.changes[max(derived.changes)]

    def take_interval_changes(self) -> dict[int, IntervalChange]:
        """What each event applied since the last call changed, by version; a
        projection reads them once. Events applied while the intervals were not
        yet derived (after a snapshot restore) are absent."""
        derived: _Derived | None = getattr(self, "_derived", None)
        if derived is None:
            return {}
        changes, derived.changes = derived.changes, {}
        return changes

    def is_retracted(self, control_event_id: str) -> bool:
        return control_event_id in self.retractions

    # -------------------------------------------------------------- internals
    def _fold_state(self) -> _Derived:
        derived: _Derived | None = getattr(self, "_derived", None)
        if derived is None:
            intervals = fold(
                self.name,
                self.initial_controller,
                self.tracked_since,
                event_id(self.slug, 1),
                self._entries_from(self.tracked_since),
            )
            first_held: dict[str, date] = {}
            for on, _, kind, actor in self.timeline:
                if kind != EventType.CONTESTED.value:
                    first_held.setdefault(actor, on)
            derived = _Derived(intervals, first_held)
            self._derived = derived
        return derived

    def _entries_from(self, day: date) -> list[TimelineEntry]:
        """The active control events on or after `day`, in world order."""
        timeline, slug = self.timeline, self.slug
        # Back from the end: every entry passed is one the caller re-folds anyway.
        start = len(timeline)
        while start and timeline[start - 1][0] >= day:
            start -= 1
        return [
            TimelineEntry(on, version, _EVENT_TYPES[kind], actor, event_id(slug, version))
            for on, version, kind, actor in timeline[start:]
        ]

    def _refold(
        self, day: date, entries: list[TimelineEntry], *, subject: TimelineEntry, verb: str
    ) -> tuple[int, list[ControlInterval]]:
        """Re-apply `entries` (every active event from `day` on, as the change
        would leave them) to the state the day before; the rules are checked and
        a broken later event is named. Returns (intervals kept, the new tail)."""
        kept, start, holders = self._resume(self._fold_state(), day)
        adding = verb == "reporting"
        try:
            tail = fold_from(
                self.name,
                start,
                holders,
                entries,
                subject_event_id=subject.event_id if adding else None,
            )
        except ControlRuleViolation as broken:
            if not broken.is_later_event:
                raise
            raise ControlRuleViolation(
                broken.rule,
                f"{verb} {subject.describe()} would break later event {broken.event_id}: "
                f"{broken.message}",
                broken.event_id,
                is_later_event=True,
            ) from None
        return kept, tail

    def _plan(self, version: int, planned: tuple[int, list[ControlInterval]]) -> None:
        self._fold_state().planned = (version, *planned)

    def _resume(self, derived: _Derived, day: date) -> tuple[int, list[ControlInterval], set[str]]:
        """Where a fold resumes to re-apply the events from `day` on: the intervals
        kept, the interval in force the day before (reopened; the first one if
        `day` starts the record) and the actors that held the city before `day`."""
        kept, resumed = reopen_before(derived.intervals, day)
        if resumed is None:
            resumed = initial_interval(
                self.initial_controller, self.tracked_since, event_id(self.slug, 1)
            )
        holders = {a for a, first in derived.first_held.items() if first < day}
        holders.add(self.initial_controller)
        return kept, [resumed], holders

    def _advance(self, version: int, day: date) -> None:
        """Bring the derived intervals up to the event just applied to the
        timeline (dated `day`): the command's checked re-fold if it planned one,
        else a re-fold from that day (a replay)."""
        derived: _Derived | None = getattr(self, "_derived", None)
        if derived is None:
            return  # restored from a snapshot: folded in full when first needed
        planned, derived.planned = derived.planned, None
        if planned is not None and planned[0] == version:
            _, kept, tail = planned
        else:
            kept, start, holders = self._resume(derived, day)
            tail = fold_from(self.name, start, holders, self._entries_from(day))
        before = derived.intervals[kept:]
        # The intervals in both are unchanged (a few each: list membership, by
        # identity or equality, costs less than hashing them into sets).
        derived.changes[version] = IntervalChange(
            tuple([i for i in before if i not in tail]),
            tuple([i for i in tail if i not in before]),
        )
        del derived.intervals[kept:]
        derived.intervals.extend(tail)

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
        kind = self._type_of(event)
        entry = [event.occurred_on, event.originator_version, kind, event.actor]
        insort(self.timeline, entry)
        identifier = event_id(self.slug, event.originator_version)
        self.control_events[identifier] = entry
        if event.report_id is not None:
            self.report_ids[event.report_id] = identifier
        derived: _Derived | None = getattr(self, "_derived", None)
        if derived is not None and kind != EventType.CONTESTED.value:
            first = derived.first_held.get(event.actor)
            if first is None or event.occurred_on < first:
                derived.first_held[event.actor] = event.occurred_on
        self._advance(event.originator_version, event.occurred_on)

    def _record_retraction(self, event: City.Retracted) -> None:
        self.retractions[event.event_id] = event.reason
        on, version, kind, actor = self.control_events[event.event_id]
        self.timeline = [e for e in self.timeline if e[1] != version]
        derived: _Derived | None = getattr(self, "_derived", None)
        if derived is not None and kind != EventType.CONTESTED.value:
            held = [
                e[0] for e in self.timeline if e[3] == actor and e[2] != EventType.CONTESTED.value
            ]
            if held:
                derived.first_held[actor] = min(held)
            else:
                derived.first_held.pop(actor, None)
        self._advance(event.originator_version, on)

    @staticmethod
    def _type_of(event: City.ControlEvent) -> str:
        return type(event).__name__
