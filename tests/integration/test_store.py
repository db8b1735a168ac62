"""The event store end to end, the same suite on real SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from eventsourcing.persistence import IntegrityError

from dateline.domain.city import City, city_id
from dateline.domain.control import EventType, Source, Status
from dateline.domain.errors import (
    CityAlreadyExists,
    CityNotFound,
    ControlRuleViolation,
    VersionMismatch,
)
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings
from tests.conftest import ManualClock

GOV, TALIBAN = "Afghan government", "Taliban"
SOURCE = Source("Reuters", "https://example.org/kunduz")


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[Dateline]:
    application = Dateline(settings, clock=clock, migrate=True)
    yield application
    application.close()


def register_kunduz(app: Dateline) -> None:
    app.register_city(
        slug="kunduz", name="Kunduz", province="Kunduz", country="Afghanistan",
        lat=36.7286, lon=68.8681, population=374000, initial_controller=GOV,
        tracked_since=date(2015, 1, 1),
    )  # fmt: skip


def report(app: Dateline, kind: EventType, on: str, actor: str, **kw: object) -> str:
    result = app.report(
        "kunduz", kind, occurred_on=date.fromisoformat(on), actor=actor, source=SOURCE,
        reported_by="tester", **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return result.event.id


def test_events_survive_reopening_the_store(settings: Settings, clock: ManualClock) -> None:
    first = Dateline(settings, clock=clock, migrate=True)
    register_kunduz(first)
    report(first, EventType.CAPTURED, "2015-09-28", TALIBAN)
    first.close()
    second = Dateline(settings, clock=clock)
    try:
        assert second.status("kunduz", date(2015, 9, 29)).state.controller == TALIBAN
        assert [e.type for e in second.history("kunduz")] == ["Registered", "Captured"]
        assert second.city_slugs() == ["kunduz"]
        assert second.count_events() == 2
    finally:
        second.close()


def test_registering_a_slug_twice_is_refused(app: Dateline) -> None:
    register_kunduz(app)
    with pytest.raises(CityAlreadyExists):
        register_kunduz(app)
    assert app.count_events() == 1


def test_an_unknown_city_is_reported_as_such(app: Dateline) -> None:
    with pytest.raises(CityNotFound):
        app.status("atlantis")
    with pytest.raises(CityNotFound):
        app.history("atlantis")


def test_a_backdated_report_changes_the_answer_only_from_its_recording_on(
    app: Dateline, clock: ManualClock
) -> None:
    register_kunduz(app)
    clock.advance(hours=1)
    report(app, EventType.CAPTURED, "2015-09-28", TALIBAN)
    clock.advance(hours=1)
    report(app, EventType.RETAKEN, "2015-10-01", GOV)
    before_correction = clock.advance(hours=1)
    clock.advance(hours=1)
    late = report(app, EventType.CONTESTED, "2015-09-20", TALIBAN)  # learned late
    after_correction = clock.advance(hours=1)

    earlier = app.status("kunduz", date(2015, 9, 21), known_at=before_correction)
    later = app.status("kunduz", date(2015, 9, 21), known_at=after_correction)
    assert (earlier.state.status, earlier.state.controller) == (Status.HELD, GOV)
    assert earlier.version == 3
    assert (later.state.status, later.state.contested_by) == (Status.CONTESTED, TALIBAN)
    assert later.state.event_id == late and later.version == 4
    # Dates the correction does not touch answer the same either way.
    for day in (date(2015, 9, 29), date(2015, 10, 2)):
        assert (
            app.status("kunduz", day, known_at=before_correction).state
            == app.status("kunduz", day, known_at=after_correction).state
        )
    assert [e.id for e in app.history("kunduz", known_at=before_correction)] == [
        "kunduz-1", "kunduz-2", "kunduz-3",
    ]  # fmt: skip


def test_a_retraction_is_ignored_when_known_at_is_before_it(
    app: Dateline, clock: ManualClock
) -> None:
    register_kunduz(app)
    clock.advance(hours=1)
    contested = report(app, EventType.CONTESTED, "2016-10-03", TALIBAN)
    before = clock.advance(hours=1)
    clock.advance(hours=1)
    retraction = app.retract("kunduz", contested, reason="misreport", retracted_by="editor")
    after = clock.advance(hours=1)

    assert app.status("kunduz", date(2016, 10, 3), known_at=before).state.status is (
        Status.CONTESTED
    )
    assert app.status("kunduz", date(2016, 10, 3), known_at=after).state.status is Status.HELD
    logged = {e.id: e for e in app.history("kunduz")}
    assert logged[contested].retracted is not None
    assert logged[contested].retracted.event_id == retraction.event.id
    assert logged[contested].retracted.reason == "misreport"
    assert app.history("kunduz", known_at=before)[-1].retracted is None


def test_known_at_before_registration_knows_nothing(app: Dateline, clock: ManualClock) -> None:
    long_ago = clock() - timedelta(days=1)
    register_kunduz(app)
    view = app.status("kunduz", date(2015, 6, 1), known_at=long_ago)
    assert (view.state.status, view.version) == (Status.UNKNOWN, 0)
    assert app.history("kunduz", known_at=long_ago) == []
    assert app.timeline("kunduz", known_at=long_ago)[1] == []


def test_record_time_is_monotone_even_when_the_clock_steps_back(
    app: Dateline, clock: ManualClock
) -> None:
    register_kunduz(app)
    clock.advance(hours=-5)
    report(app, EventType.CAPTURED, "2015-09-28", TALIBAN)
    clock.advance(hours=-5)
    report(app, EventType.RETAKEN, "2015-10-01", GOV)
    stamps = [e.recorded_at for e in app.history("kunduz")]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


def test_a_repeated_report_id_writes_nothing(app: Dateline) -> None:
    register_kunduz(app)
    first = app.report("kunduz", EventType.CAPTURED, occurred_on=date(2015, 9, 28), actor=TALIBAN,
                       source=SOURCE, reported_by="a", report_id="ap-1")  # fmt: skip
    again = app.report("kunduz", EventType.CAPTURED, occurred_on=date(2015, 9, 28), actor=TALIBAN,
                       source=SOURCE, reported_by="b", report_id="ap-1")  # fmt: skip
    assert first.created and not again.created
    assert again.event.id == first.event.id and again.event.reported_by == "a"
    assert app.count_events() == 2


def test_the_storage_refuses_a_duplicate_report_id_and_rolls_back_the_append(
    app: Dateline,
) -> None:
    register_kunduz(app)
    report(app, EventType.CONTESTED, "2016-10-03", TALIBAN, report_id="r-1")
    city = app.find_city("kunduz")
    assert city is not None
    # Simulate a writer that did not see r-1 (a racing process): the domain check
    # passes, the unique (city, report_id) index must stop the whole save.
    del city.report_ids["r-1"]
    city.report(EventType.RETAKEN, occurred_on=date(2016, 10, 4), actor=GOV, source=SOURCE,
                reported_by="x", recorded_at=app.clock(), report_id="r-1")  # fmt: skip
    city.report(EventType.CONTESTED, occurred_on=date(2016, 10, 9), actor=TALIBAN, source=SOURCE,
                reported_by="x", recorded_at=app.clock(), report_id="r-2")  # fmt: skip
    with pytest.raises(IntegrityError):
        app.save(city)
    assert app.count_events() == 2
    assert len(app.history("kunduz")) == 2


def test_if_match_refuses_a_stale_version(app: Dateline) -> None:
    register_kunduz(app)
    report(app, EventType.CONTESTED, "2016-10-03", TALIBAN)
    with pytest.raises(VersionMismatch) as caught:
        report(app, EventType.RETAKEN, "2016-10-04", GOV, expected_version=1)
    assert caught.value.actual == 2
    report(app, EventType.RETAKEN, "2016-10-04", GOV, expected_version=2)


def test_a_rule_violation_writes_nothing(app: Dateline) -> None:
    register_kunduz(app)
    with pytest.raises(ControlRuleViolation):
        report(app, EventType.RETAKEN, "2016-10-04", GOV)
    assert app.count_events() == 1


def test_concurrent_appends_from_two_processes_lose_nothing(
    settings: Settings, clock: ManualClock
) -> None:
    writers = [Dateline(settings, clock=clock, migrate=True), Dateline(settings, clock=clock)]
    register_kunduz(writers[0])
    per_thread, threads = 6, 8
    errors: list[BaseException] = []

    def append(n: int) -> None:
        app = writers[n % 2]  # two applications: in-process locks do not help them
        try:
            for i in range(per_thread):
                # Distinct challengers on distinct days: always valid, in any order.
                app.report("kunduz", EventType.CONTESTED, occurred_on=date(2016, 1, 1)
                           + timedelta(days=n * per_thread + i), actor=f"militia {n}-{i}",
                           source=SOURCE, reported_by=f"w{n}", report_id=f"w{n}-{i}")  # fmt: skip
        except BaseException as error:  # surfaced below, with the count
            errors.append(error)

    workers = [threading.Thread(target=append, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    try:
        assert errors == []
        logged = writers[1].history("kunduz")
        report_ids = [e.report_id for e in logged if e.report_id]
        assert len(report_ids) == per_thread * threads == len(set(report_ids))
        assert [e.version for e in logged] == list(range(1, len(logged) + 1))
        assert writers[0].count_events() == len(logged)
    finally:
        for w in writers:
            w.close()


def test_a_snapshot_restored_city_answers_like_a_full_replay(
    make_settings: object, store_kind: str, clock: ManualClock
) -> None:
    settings = make_settings(store_kind, snapshot_interval=3)  # type: ignore[operator]
    app = Dateline(settings, clock=clock, migrate=True)
    try:
        register_kunduz(app)
        for kind, on, actor in [
            (EventType.CAPTURED, "2015-09-28", TALIBAN), (EventType.RETAKEN, "2015-10-01", GOV),
            (EventType.CONTESTED, "2016-10-03", TALIBAN), (EventType.RETAKEN, "2016-10-04", GOV),
            (EventType.CONTESTED, "2015-09-20", TALIBAN),  # backdated, after the v3 snapshot
            (EventType.CONTESTED, "2021-06-20", TALIBAN),
            (EventType.CAPTURED, "2021-08-08", TALIBAN),
        ]:  # fmt: skip
            clock.advance(minutes=1)
            report(app, kind, on, actor)
        assert app.snapshots is not None
        snapshots = list(app.snapshots.get(city_id("kunduz")))
        assert [s.originator_version for s in snapshots] == [3, 6]
        restored = app.find_city("kunduz")
        replayed: City | None = None
        for event in app.events.get(city_id("kunduz")):
            replayed = event.mutate(replayed)  # type: ignore[attr-defined]
        assert restored is not None and replayed is not None
        assert restored.version == replayed.version == 8
        day = date(2015, 1, 1)
        while day < date(2021, 12, 31):
            assert restored.status_on(day) == replayed.status_on(day), day
            day += timedelta(days=7)
        assert restored.intervals() == replayed.intervals()
    finally:
        app.close()
