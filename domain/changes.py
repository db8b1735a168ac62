"""What changed between two versions of a city's control timeline (pure).

Both timelines are lists of day intervals [start, end) (end None = open). The
answer is every run of days on which the two say different things: status,
controller or challenger (the event credited is compared too, so a corrected
source shows up even when the answer is the same)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date

from dateline.domain.control import UNKNOWN, ControlInterval, ControlState


@dataclass(frozen=True, slots=True)
class Change:
    start: date
    end: date | None  # None: open-ended
    before: ControlState
    after: ControlState


def state_at(intervals: list[ControlInterval], day: date) -> ControlState:
    """The state on `day` of intervals in day order (a timeline): found by bisection,
    since `changes` asks it at every cut of two long timelines."""
    index = bisect_right(intervals, day, key=lambda interval: interval.start)
    if index:
        interval = intervals[index - 1]
        if interval.end is None or day < interval.end:
            return interval.state
    return UNKNOWN


def changes(before: list[ControlInterval], after: list[ControlInterval]) -> list[Change]:
    """Runs of days on which `after` answers differently from `before`, in day order."""
    cuts = sorted(
        {i.start for i in (*before, *after)} | {i.end for i in (*before, *after) if i.end}
    )
    found: list[Change] = []
    for k, start in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else None
        old, new = state_at(before, start), state_at(after, start)
        if old == new:
            continue
        if found and found[-1].end == start and (found[-1].before, found[-1].after) == (old, new):
            found[-1] = Change(found[-1].start, end, old, new)
        else:
            found.append(Change(start, end, old, new))
    return found
