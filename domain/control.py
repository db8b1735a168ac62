"""The rules of control and the as-of fold, as pure functions over value objects.

A city's control events are folded in world order: by `occurred_on`, ties broken
by recording order (the event's version). Each event is checked against the
state on its own date, so a backdated report is judged where it belongs.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from dateline.domain.errors import ControlRuleViolation


class EventType(StrEnum):
    CONTESTED = "Contested"
    CAPTURED = "Captured"
    RETAKEN = "Retaken"


class Status(StrEnum):
    HELD = "held"
    CONTESTED = "contested"
    UNKNOWN = "unknown"  # before the record covers the city


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    url: str | None = None
    quote: str | None = None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """What the fold needs to know about one control event."""

    occurred_on: date
    version: int
    type: EventType
    actor: str
    event_id: str

    def describe(self) -> str:
        return f"{self.event_id} ({self.type.value} by {self.actor} on {self.occurred_on})"


@dataclass(frozen=True, slots=True)
class ControlState:
    """Who held a city on a date, since when, and which event made it so."""

    status: Status
    controller: str | None
    contested_by: str | None
    since: date | None
    event_id: str | None


@dataclass(frozen=True, slots=True)
class ControlInterval:
    """A run of days [start, end) with one control state; `end` None = still open."""

    start: date
    end: date | None
    state: ControlState


UNKNOWN = ControlState(Status.UNKNOWN, None, None, None, None)


def _next_state(
    city: str,
    state: ControlState,
    holders: set[str],
    entry: TimelineEntry,
    subject_event_id: str | None,
) -> ControlState:
    """Apply one event to the state on its date, or raise the rule it breaks."""

    def violation(rule: str, why: str) -> ControlRuleViolation:
        return ControlRuleViolation(
            rule,
            f"{entry.type.value} by {entry.actor} on {entry.occurred_on}: {why}",
            entry.event_id,
            is_later_event=entry.event_id != subject_event_id,
        )

    actor, on = entry.actor, entry.occurred_on
    if entry.type is EventType.CONTESTED:
        if actor == state.controller:
            raise violation(
                "contested-by-controller",
                f"{actor} already controls {city} on that date, so it cannot contest it",
            )
        if state.status is Status.CONTESTED and state.contested_by == actor:
            return state  # another report of the same assault: it began earlier
        return ControlState(Status.CONTESTED, state.controller, actor, on, entry.event_id)
    if entry.type is EventType.CAPTURED:
        if actor == state.controller:
            raise violation(
                "captured-by-controller",
                f"{actor} already controls {city} on that date, so it cannot capture it",
            )
        return ControlState(Status.HELD, actor, None, on, entry.event_id)
    # Retaken: an attack repelled by the controller, or a recapture by a former holder.
    repelled = state.status is Status.CONTESTED and actor == state.controller
    recaptured = actor != state.controller and actor in holders
    if not (repelled or recaptured):
        if actor == state.controller:
            why = f"{actor} holds {city} on that date and nobody contests it"
        else:
            why = f"{actor} never held {city} before that date"
        raise violation("retaken-requires-prior-control", why)
    return ControlState(Status.HELD, actor, None, on, entry.event_id)


def fold(
    city: str,
    initial_controller: str,
    tracked_since: date,
    registration_event_id: str,
    entries: Iterable[TimelineEntry],
    *,
    subject_event_id: str | None = None,
) -> list[ControlInterval]:
    """Fold control events into day intervals, checking every rule on the way.

    `entries` must already be in world order. `subject_event_id` names the event
    being added or the one being retracted's neighbour under test: a violation by
    any other event is reported as a later event the change would break.
    """
    start = initial_interval(initial_controller, tracked_since, registration_event_id)
    return fold_from(
        city, [start], {initial_controller}, entries, subject_event_id=subject_event_id
    )


def initial_interval(
    initial_controller: str, tracked_since: date, registration_event_id: str
) -> ControlInterval:
    state = ControlState(
        Status.HELD, initial_controller, None, tracked_since, registration_event_id
    )
    return ControlInterval(tracked_since, None, state)


def fold_from(
    city: str,
    intervals: list[ControlInterval],
    holders: set[str],
    entries: Iterable[TimelineEntry],
    *,
    subject_event_id: str | None = None,
) -> list[ControlInterval]:
    """Continue a fold: `intervals` end with the open interval every event in
    `entries` (world order, all on or after its start) is applied to; `holders`
    are the actors that held the city before them. Returns `intervals`, extended."""
    state = intervals[-1].state
    for entry in entries:
        new = _next_state(city, state, holders, entry, subject_event_id)
        if new == state:
            continue
        state = new
        if state.controller is not None:
            holders.add(state.controller)
        _enter(intervals, entry.occurred_on, state)
    return intervals


def reopen_before(
    intervals: Sequence[ControlInterval], day: date
) -> tuple[int, ControlInterval | None]:
    """Where a fold resumes to re-apply every event on or after `day`: the number
    of intervals it keeps unchanged, and the interval in force the day before,
    reopened (None: `day` is the first day, the fold starts afresh)."""
    if intervals and intervals[-1].start < day:
        kept = len(intervals)  # the common case, a report dated after every change
    else:
        kept = bisect_left(intervals, day, key=lambda interval: interval.start)
    if kept == 0:
        return 0, None
    last = intervals[kept - 1]
    return kept - 1, ControlInterval(last.start, None, last.state)


def _enter(intervals: list[ControlInterval], on: date, state: ControlState) -> None:
    """Close the open interval on `on` and open one in `state`."""
    last = intervals[-1]
    if last.start == on:
        # Several events on one day: the day ends in the last one's state.
        intervals[-1] = ControlInterval(last.start, None, state)
    else:
        intervals[-1] = ControlInterval(last.start, on, last.state)
        intervals.append(ControlInterval(on, None, state))


def state_on(intervals: Sequence[ControlInterval], tracked_since: date, on: date) -> ControlState:
    """The state at the end of day `on`; unknown before the record begins."""
    if on < tracked_since:
        return UNKNOWN
    index = bisect_right(intervals, on, key=lambda interval: interval.start)
    return intervals[index - 1].state if index else UNKNOWN
