"""domain/changes.py: the runs of days two timelines answer differently."""

from __future__ import annotations

from datetime import date

from dateline.domain.changes import Change, changes
from dateline.domain.control import UNKNOWN, ControlInterval, ControlState, Status

GOV = ControlState(Status.HELD, "Afghan government", None, date(2015, 1, 1), "kunduz-1")
CONTESTED = ControlState(
    Status.CONTESTED, "Afghan government", "Taliban", date(2015, 9, 26), "kunduz-11"
)
TALIBAN = ControlState(Status.HELD, "Taliban", None, date(2015, 9, 28), "kunduz-3")


def test_the_same_timeline_changes_nothing() -> None:
    timeline = [ControlInterval(date(2015, 1, 1), None, GOV)]
    assert changes(timeline, timeline) == []


def test_a_backdated_contest_changes_only_its_days() -> None:
    before = [
        ControlInterval(date(2015, 1, 1), date(2015, 9, 28), GOV),
        ControlInterval(date(2015, 9, 28), None, TALIBAN),
    ]
    after = [
        ControlInterval(date(2015, 1, 1), date(2015, 9, 26), GOV),
        ControlInterval(date(2015, 9, 26), date(2015, 9, 28), CONTESTED),
        ControlInterval(date(2015, 9, 28), None, TALIBAN),
    ]
    assert changes(before, after) == [Change(date(2015, 9, 26), date(2015, 9, 28), GOV, CONTESTED)]
    assert changes(after, before) == [Change(date(2015, 9, 26), date(2015, 9, 28), CONTESTED, GOV)]


def test_a_registration_changes_every_day_from_unknown() -> None:
    after = [
        ControlInterval(date(2015, 1, 1), date(2015, 9, 28), GOV),
        ControlInterval(date(2015, 9, 28), None, TALIBAN),
    ]
    assert changes([], after) == [
        Change(date(2015, 1, 1), date(2015, 9, 28), UNKNOWN, GOV),
        Change(date(2015, 9, 28), None, UNKNOWN, TALIBAN),
    ]
