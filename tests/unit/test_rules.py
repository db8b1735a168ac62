"""The rules of control, each accepted and rejected, on a bare aggregate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from dateline.domain.city import City
from dateline.domain.control import EventType, Source, Status
from dateline.domain.errors import (
    AlreadyRetracted,
    ControlRuleViolation,
    InvalidReport,
    UnknownEvent,
)

GOV, TALIBAN, NRF = "Afghan government", "Taliban", "National Resistance Front"
RECORDED = datetime(2022, 1, 1, 12, tzinfo=UTC)
SOURCE = Source("Reuters", "https://example.org/r", None)


def new_city(initial: str = GOV, since: date = date(2015, 1, 1)) -> City:
    return City.register(
        slug="kunduz", name="Kunduz", province="Kunduz", country="Afghanistan",
        lat=36.7286, lon=68.8681, population=374000, initial_controller=initial,
        tracked_since=since, recorded_at=RECORDED,
    )  # fmt: skip


def report(city: City, kind: EventType, on: str, actor: str, **kw: object) -> str:
    outcome = city.report(
        kind, occurred_on=date.fromisoformat(on), actor=actor, source=SOURCE,
        reported_by="tester", recorded_at=kw.pop("recorded_at", RECORDED),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return outcome.event_id


def status(city: City, on: str) -> tuple[Status, str | None, str | None]:
    s = city.status_on(date.fromisoformat(on))
    return s.status, s.controller, s.contested_by


class TestContested:
    def test_by_a_challenger_marks_the_city_contested_and_keeps_the_controller(self) -> None:
        city = new_city()
        eid = report(city, EventType.CONTESTED, "2016-10-03", TALIBAN)
        assert status(city, "2016-10-03") == (Status.CONTESTED, GOV, TALIBAN)
        assert city.status_on(date(2016, 10, 3)).since == date(2016, 10, 3)
        assert city.status_on(date(2016, 10, 3)).event_id == eid
        assert status(city, "2016-10-02") == (Status.HELD, GOV, None)

    def test_by_the_controller_is_rejected(self) -> None:
        city = new_city()
        with pytest.raises(ControlRuleViolation) as caught:
            report(city, EventType.CONTESTED, "2016-10-03", GOV)
        assert caught.value.rule == "contested-by-controller"
        assert not caught.value.is_later_event
        assert city.version == 1  # nothing triggered

    def test_a_second_report_of_the_same_assault_keeps_its_start(self) -> None:
        city = new_city()
        first = report(city, EventType.CONTESTED, "2021-06-20", TALIBAN)
        report(city, EventType.CONTESTED, "2021-08-06", TALIBAN)
        state = city.status_on(date(2021, 8, 7))
        assert (state.status, state.since, state.event_id) == (
            Status.CONTESTED, date(2021, 6, 20), first,
        )  # fmt: skip


class TestCaptured:
    def test_by_a_challenger_changes_the_controller(self) -> None:
        city = new_city()
        report(city, EventType.CAPTURED, "2015-09-28", TALIBAN)
        assert status(city, "2015-09-28") == (Status.HELD, TALIBAN, None)

    def test_of_a_contested_city_ends_the_contest(self) -> None:
        city = new_city()
        report(city, EventType.CONTESTED, "2021-06-20", TALIBAN)
        report(city, EventType.CAPTURED, "2021-08-08", TALIBAN)
        assert status(city, "2021-08-07") == (Status.CONTESTED, GOV, TALIBAN)
        assert status(city, "2021-08-08") == (Status.HELD, TALIBAN, None)

    def test_by_the_controller_is_rejected(self) -> None:
        city = new_city()
        report(city, EventType.CAPTURED, "2015-09-28", TALIBAN)
        with pytest.raises(ControlRuleViolation) as caught:
            report(city, EventType.CAPTURED, "2015-09-30", TALIBAN)
        assert caught.value.rule == "captured-by-controller"


class TestRetaken:
    def test_by_the_controller_of_a_contested_city_repels_the_attack(self) -> None:
        city = new_city()
        report(city, EventType.CONTESTED, "2016-10-03", TALIBAN)
        eid = report(city, EventType.RETAKEN, "2016-10-04", GOV)
        assert status(city, "2016-10-05") == (Status.HELD, GOV, None)
        assert city.status_on(date(2016, 10, 5)).event_id == eid

    def test_by_a_former_holder_is_a_recapture(self) -> None:
        city = new_city()
        report(city, EventType.CAPTURED, "2015-09-28", TALIBAN)
        report(city, EventType.RETAKEN, "2015-10-01", GOV)
        assert status(city, "2015-10-02") == (Status.HELD, GOV, None)

    def test_by_the_controller_of_an_uncontested_city_is_rejected(self) -> None:
        city = new_city()
        with pytest.raises(ControlRuleViolation) as caught:
            report(city, EventType.RETAKEN, "2016-10-04", GOV)
        assert caught.value.rule == "retaken-requires-prior-control"
        assert "nobody contests it" in caught.value.message

    def test_by_an_actor_that_never_held_the_city_is_rejected(self) -> None:
        city = new_city()
        report(city, EventType.CAPTURED, "2015-09-28", TALIBAN)
        with pytest.raises(ControlRuleViolation) as caught:
            report(city, EventType.RETAKEN, "2015-10-01", NRF)
        assert "never held" in caught.value.message

    def test_requires_the_prior_hold_to_be_earlier_in_world_time(self) -> None:
        city = new_city(initial=NRF)
        report(city, EventType.CAPTURED, "2021-09-06", TALIBAN)
        # Taliban holds from 09-06; a 'retaken by Taliban' dated 09-05 finds NRF holding
        # and Taliban never having held before that date.
        report(city, EventType.CAPTURED, "2021-09-10", NRF)
        with pytest.raises(ControlRuleViolation):
            report(city, EventType.RETAKEN, "2021-09-05", TALIBAN)

    def test_same_day_attack_and_repulse_fold_in_recording_order(self) -> None:
        city = new_city()
        report(city, EventType.CONTESTED, "2016-09-08", TALIBAN)
        retaken = report(city, EventType.RETAKEN, "2016-09-08", GOV)
        assert status(city, "2016-09-08") == (Status.HELD, GOV, None)
        assert city.status_on(date(2016, 9, 8)).event_id == retaken


class TestDates:
    def test_before_the_record_begins_is_rejected(self) -> None:
        city = new_city(since=date(2015, 1, 1))
        with pytest.raises(InvalidReport) as caught:
            report(city, EventType.CAPTURED, "2014-12-31", TALIBAN)
        assert caught.value.field == "occurred_on"

    def test_on_the_first_day_is_accepted(self) -> None:
        city = new_city(since=date(2015, 1, 1))
        report(city, EventType.CAPTURED, "2015-01-01", TALIBAN)
        assert status(city, "2015-01-01") == (Status.HELD, TALIBAN, None)

    def test_a_day_not_yet_begun_anywhere_is_the_future(self) -> None:
        city = new_city()
        recorded = datetime(2021, 8, 8, 12, tzinfo=UTC)
        # 2021-08-09 has begun in UTC+14 by 10:00 UTC on the 8th: accepted.
        report(city, EventType.CONTESTED, "2021-08-09", TALIBAN, recorded_at=recorded)
        with pytest.raises(InvalidReport, match="in the future"):
            report(city, EventType.CAPTURED, "2021-08-10", TALIBAN, recorded_at=recorded)

    def test_status_before_the_record_is_unknown(self) -> None:
        city = new_city(since=date(2015, 1, 1))
        assert city.status_on(date(2014, 6, 1)).status is Status.UNKNOWN


class TestFields:
    @pytest.mark.parametrize("actor", ["", "   ", "x" * 201])
    def test_an_unusable_actor_is_rejected(self, actor: str) -> None:
        with pytest.raises(InvalidReport) as caught:
            report(new_city(), EventType.CONTESTED, "2016-10-03", actor)
        assert caught.value.field == "actor"

    def test_actor_whitespace_is_normalised(self) -> None:
        city = new_city()
        report(city, EventType.CAPTURED, "2015-09-28", "  Taliban ")
        assert status(city, "2015-09-28") == (Status.HELD, TALIBAN, None)

    def test_record_time_must_be_timezone_aware(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            report(new_city(), EventType.CONTESTED, "2016-10-03", TALIBAN,
                   recorded_at=datetime(2021, 9, 1))  # fmt: skip


class TestBackdating:
    def test_a_backdated_report_is_folded_where_it_belongs(self) -> None:
        city = new_city()
        report(city, EventType.CAPTURED, "2015-09-28", TALIBAN)
        report(city, EventType.RETAKEN, "2015-10-01", GOV)
        report(city, EventType.CONTESTED, "2015-09-20", TALIBAN)  # learned late
        assert status(city, "2015-09-21") == (Status.CONTESTED, GOV, TALIBAN)
        assert status(city, "2015-09-29") == (Status.HELD, TALIBAN, None)
        assert status(city, "2015-10-02") == (Status.HELD, GOV, None)

    def test_a_backdated_report_that_breaks_a_later_event_names_it(self) -> None:
        city = new_city()
        contested = report(city, EventType.CONTESTED, "2016-10-03", TALIBAN)
        report(city, EventType.RETAKEN, "2016-10-04", GOV)
        with pytest.raises(ControlRuleViolation) as caught:
            # Backdated: a Taliban capture on 10-01 would make the 10-03 'Contested
            # by Taliban' a controller contesting its own city.
            report(city, EventType.CAPTURED, "2016-10-01", TALIBAN)
        assert caught.value.is_later_event
        assert caught.value.event_id == contested
        assert f"would break later event {contested}" in caught.value.message
        assert city.version == 3  # nothing was added

    def test_a_backdated_report_that_keeps_later_events_valid_is_accepted(self) -> None:
        city = new_city()
        report(city, EventType.CONTESTED, "2016-10-03", TALIBAN)
        report(city, EventType.RETAKEN, "2016-10-04", GOV)
        # Captured the same day as the assault: the 10-04 'Retaken' becomes a recapture.
        report(city, EventType.CAPTURED, "2016-10-03", TALIBAN)
        assert status(city, "2016-10-03") == (Status.HELD, TALIBAN, None)
        assert status(city, "2016-10-04") == (Status.HELD, GOV, None)

    def test_a_retraction_that_would_break_a_later_event_is_rejected(self) -> None:
        city = new_city()
        captured = report(city, EventType.CAPTURED, "2015-09-28", TALIBAN)
        retaken = report(city, EventType.RETAKEN, "2015-10-01", GOV)
        with pytest.raises(ControlRuleViolation) as caught:
            city.retract(captured, reason="wrong", retracted_by="editor", recorded_at=RECORDED)
        assert caught.value.event_id == retaken
        assert f"retracting {captured}" in caught.value.message
        assert not city.is_retracted(captured)

    def test_a_retraction_withdraws_the_event_from_every_date(self) -> None:
        city = new_city()
        contested = report(city, EventType.CONTESTED, "2016-10-03", TALIBAN)
        city.retract(contested, reason="misreport", retracted_by="editor", recorded_at=RECORDED)
        assert status(city, "2016-10-03") == (Status.HELD, GOV, None)
        with pytest.raises(AlreadyRetracted):
            city.retract(contested, reason="again", retracted_by="editor", recorded_at=RECORDED)

    def test_retracting_an_unknown_or_non_control_event_is_rejected(self) -> None:
        city = new_city()
        with pytest.raises(UnknownEvent):
            city.retract("kunduz-9", reason="x", retracted_by="editor", recorded_at=RECORDED)
        with pytest.raises(UnknownEvent):
            city.retract("kunduz-1", reason="x", retracted_by="editor", recorded_at=RECORDED)

    def test_a_retraction_needs_a_reason(self) -> None:
        city = new_city()
        eid = report(city, EventType.CONTESTED, "2016-10-03", TALIBAN)
        with pytest.raises(InvalidReport) as caught:
            city.retract(eid, reason="  ", retracted_by="editor", recorded_at=RECORDED)
        assert caught.value.field == "reason"


class TestIdempotencyAndRecordTime:
    def test_a_known_report_id_returns_the_original_and_adds_nothing(self) -> None:
        city = new_city()
        first = city.report(
            EventType.CAPTURED,
            occurred_on=date(2015, 9, 28),
            actor=TALIBAN,
            source=SOURCE,
            reported_by="a",
            recorded_at=RECORDED,
            report_id="r1",
        )
        again = city.report(
            EventType.CAPTURED,
            occurred_on=date(2015, 9, 28),
            actor=TALIBAN,
            source=SOURCE,
            reported_by="b",
            recorded_at=RECORDED,
            report_id="r1",
        )
        assert first.created and not again.created
        assert again.event_id == first.event_id
        assert city.version == 2

    def test_a_reused_report_id_with_other_facts_is_refused(self) -> None:
        city = new_city()
        report(city, EventType.CAPTURED, "2015-09-28", TALIBAN, report_id="r1")
        with pytest.raises(InvalidReport) as caught:
            report(city, EventType.RETAKEN, "2015-10-01", GOV, report_id="r1")
        assert caught.value.field == "report_id"

    def test_record_time_is_strictly_increasing_even_if_the_clock_goes_back(self) -> None:
        city = new_city()
        report(city, EventType.CAPTURED, "2015-09-28", TALIBAN,
               recorded_at=RECORDED - timedelta(days=3))  # fmt: skip
        report(city, EventType.RETAKEN, "2015-10-01", GOV, recorded_at=RECORDED)
        stamps = [e.timestamp for e in city.collect_events()]
        assert stamps == sorted(stamps)
        assert len(set(stamps)) == len(stamps)


def test_intervals_cover_the_record_without_gaps() -> None:
    city = new_city()
    report(city, EventType.CONTESTED, "2015-09-28", TALIBAN)
    report(city, EventType.CAPTURED, "2015-09-28", TALIBAN)
    report(city, EventType.RETAKEN, "2015-10-01", GOV)
    intervals = city.intervals()
    assert intervals[0].start == date(2015, 1, 1)
    assert intervals[-1].end is None
    for before, after in pairwise(intervals):
        assert before.end == after.start
    # the same-day contest is superseded by the capture: no zero-length interval
    assert [(i.start, i.state.controller) for i in intervals] == [
        (date(2015, 1, 1), GOV), (date(2015, 9, 28), TALIBAN), (date(2015, 10, 1), GOV),
    ]  # fmt: skip


class TestUnstorableInput:
    @pytest.mark.parametrize("actor", ["Tali\x00ban", "Taliban\x1b[31m", "\ud800"])
    def test_control_characters_and_lone_surrogates_are_refused(self, actor: str) -> None:
        with pytest.raises(InvalidReport, match="unprintable character") as caught:
            report(new_city(), EventType.CONTESTED, "2016-10-03", actor)
        assert caught.value.field == "actor"

    def test_prose_keeps_newlines_and_tabs(self) -> None:
        city = new_city()
        report(city, EventType.CONTESTED, "2016-10-03", TALIBAN, note="line one\n\tline two")
        assert city.version == 2

    @pytest.mark.parametrize(
        ("field", "overrides"),
        [
            ("population", {"population": 10**30}),
            ("population", {"population": -1}),
            ("lat", {"lat": float("nan")}),
            ("lon", {"lon": float("inf")}),
            ("lat", {"lat": 91.0}),
        ],
    )
    def test_registration_refuses_impossible_numbers(
        self, field: str, overrides: dict[str, object]
    ) -> None:
        values: dict[str, object] = {
            "slug": "x", "name": "X", "province": "P", "country": "C", "lat": 1.0, "lon": 1.0,
            "population": 1, "initial_controller": GOV, "tracked_since": date(2015, 1, 1),
            "recorded_at": RECORDED,
        }  # fmt: skip
        with pytest.raises(InvalidReport) as caught:
            City.register(**{**values, **overrides})  # type: ignore[arg-type]
        assert caught.value.field == field
