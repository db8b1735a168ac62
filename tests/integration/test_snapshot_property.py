"""Property: a city restored from a snapshot answers exactly like a full replay,
for every date and every version, on both stores."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dateline.domain.city import City, city_id
from dateline.domain.control import EventType, Source
from dateline.domain.errors import DomainError
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings
from tests.conftest import ManualClock

ACTORS = ("Afghan government", "Taliban", "National Resistance Front")
START = date(2015, 1, 1)
slugs = (f"city-{n}" for n in itertools.count())

Command = tuple[str, EventType, int, str, int]
commands = st.lists(
    st.tuples(
        st.sampled_from(["report", "report", "report", "retract"]),
        st.sampled_from(list(EventType)),
        st.integers(0, 2500),  # day offset: later reports are often backdated
        st.sampled_from(ACTORS),
        st.integers(0, 30),  # which earlier event a retraction targets
    ),
    min_size=1,
    max_size=14,
)


def full_replay(app: Dateline, slug: str, version: int) -> City:
    city: City | None = None
    for event in app.events.get(city_id(slug), lte=version):
        city = event.mutate(city)  # type: ignore[attr-defined]
    assert city is not None
    return city


def run_script(app: Dateline, clock: ManualClock, slug: str, script: list[Command]) -> None:
    app.register_city(
        slug=slug, name=slug, province="P", country="X", lat=0, lon=0, population=None,
        initial_controller=ACTORS[0], tracked_since=START,
    )  # fmt: skip
    for action, kind, offset, actor, target in script:
        clock.advance(minutes=1)
        try:
            if action == "report":
                app.report(slug, kind, occurred_on=START + timedelta(days=offset), actor=actor,
                           source=Source("s"), reported_by="r")  # fmt: skip
            else:
                app.retract(slug, f"{slug}-{target}", reason="r", retracted_by="e")
        except DomainError:
            continue


def test_snapshot_restored_equals_full_replay(
    make_settings: Callable[..., Settings], store_kind: str
) -> None:
    clock = ManualClock()
    app = Dateline(make_settings(store_kind, snapshot_interval=2), clock=clock, migrate=True)
    probe_days = [START + timedelta(days=d) for d in range(-1, 2600, 37)]

    @settings(max_examples=25, deadline=None)
    @given(script=commands)
    def check(script: list[Command]) -> None:
        slug = next(slugs)
        run_script(app, clock, slug, script)
        current = app.find_city(slug)
        assert current is not None and app.snapshots is not None
        if current.version >= 2:
            assert list(app.snapshots.get(city_id(slug)))  # restores really start from one
        for version in range(1, current.version + 1):
            restored = app.repository.get(city_id(slug), version=version)
            replayed = full_replay(app, slug, version)
            assert restored.intervals() == replayed.intervals(), version  # type: ignore[attr-defined]
            for day in probe_days:
                assert restored.status_on(day) == replayed.status_on(day)  # type: ignore[attr-defined]

    try:
        check()
    finally:
        app.close()
