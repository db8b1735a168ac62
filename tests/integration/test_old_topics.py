"""Events stored before the `dateline.*` namespace (topics "domain.city:City...")
are read back as the same classes, on both stores, by the write path and the
read model's catch-up."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from eventsourcing.utils import get_topic, resolve_topic

from dateline.domain.city import City
from dateline.domain.control import EventType, Source
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings
from tests.conftest import ManualClock

OLD_PREFIX, NEW_PREFIX = "domain.", "dateline.domain."


def old_topic(cls: type) -> str:
    topic = get_topic(cls)
    assert topic.startswith(NEW_PREFIX), topic
    return OLD_PREFIX + topic.removeprefix(NEW_PREFIX)


def test_every_stored_class_resolves_from_its_old_topic() -> None:
    for cls in (
        City,
        City.Snapshot,
        City.Registered,
        City.Contested,
        City.Captured,
        City.Retaken,
        City.Retracted,
    ):
        assert resolve_topic(old_topic(cls)) is cls


def test_a_log_written_under_the_old_names_is_read(settings: Settings, clock: ManualClock) -> None:
    app = Dateline(settings, clock=clock, migrate=True)
    try:
        city = City.register(
            slug="old-kunduz",
            name="Kunduz",
            province="Kunduz",
            country="Afghanistan",
            lat=36.73,
            lon=68.87,
            population=None,
            initial_controller="Afghan government",
            tracked_since=date(2015, 1, 1),
            recorded_at=clock(),
        )
        city.report(
            EventType.CAPTURED,
            occurred_on=date(2015, 9, 28),
            actor="Taliban",
            source=Source("dawn.com"),
            reported_by="archive",
            recorded_at=clock.advance(minutes=1),
        )
        stored = [app.mapper.to_stored_event(e) for e in city.collect_events()]
        old = [replace(s, topic=s.topic.replace(NEW_PREFIX, OLD_PREFIX, 1)) for s in stored]
        assert all(s.topic.startswith("domain.city:City.") for s in old)
        app.recorder.insert_events(old)

        loaded = app.load_city(city.id)
        assert loaded is not None
        assert loaded.version == 2
        assert loaded.status_on(date(2015, 10, 1)) == city.status_on(date(2015, 10, 1))
    finally:
        app.close()

    # A new process catches the read model up from those events.
    reopened = Dateline(settings, clock=clock)
    try:
        status = reopened.read_model.status("old-kunduz", as_of=date(2015, 10, 1))
        assert status.state == city.status_on(date(2015, 10, 1))
        assert status.version == 2
    finally:
        reopened.close()
