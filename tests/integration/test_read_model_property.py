"""Property: for any log the domain accepts (backdated reports, retractions,
cities registered at any moment), the bitemporal read model answers every
(city, as_of, known_at) exactly as the aggregate fold does, on both stores."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dateline.domain.control import EventType, Source
from dateline.domain.errors import DomainError
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings
from tests.conftest import ManualClock

ACTORS = ("Afghan government", "Taliban", "National Resistance Front")
START = date(2015, 1, 1)
PAIRS_PER_CITY = 80
examples = itertools.count()

# (action, city, event type, day offset, actor, retraction target, minutes to advance)
Command = tuple[str, int, EventType, int, str, int, int]
commands = st.lists(
    st.tuples(
        st.sampled_from(["register"] + ["report"] * 6 + ["retract"] * 2),
        st.sampled_from([0, 0, 0, 1, 1, 2]),
        st.sampled_from(list(EventType)),
        st.integers(-5, 900),  # before tracked_since is refused; later ones backdate
        st.sampled_from(ACTORS),
        st.integers(0, 100),  # which active control event a retraction withdraws
        st.sampled_from([0, 0, 1, 30, 600, 2000]),  # 0: several writes in one instant
    ),
    min_size=15,
    max_size=50,
)


def run_script(app: Dateline, clock: ManualClock, prefix: str, script: list[Command]) -> None:
    # City 0 exists from the start; 1 and 2 only once a "register" comes along.
    for action, index, kind, offset, actor, target, minutes in [
        ("register", 0, EventType.CAPTURED, 0, ACTORS[0], 0, 0),
        *script,
    ]:
        clock.advance(minutes=minutes)
        slug = f"{prefix}-{index}"
        try:
            if action == "register":
                app.register_city(
                    slug=slug, name=slug, province="P", country="X", lat=0, lon=0,
                    population=None, initial_controller=ACTORS[index % 2],
                    tracked_since=START + timedelta(days=index * 40),
                )  # fmt: skip
            elif action == "report":
                app.report(slug, kind, occurred_on=START + timedelta(days=offset), actor=actor,
                           source=Source("s"), reported_by="r")  # fmt: skip
            else:
                city = app.find_city(slug)
                active = [] if city is None else [e for e, _ in city.control_events.items()
                                                  if not city.is_retracted(e)]  # fmt: skip
                if active:
                    chosen = active[target % len(active)]
                    app.retract(slug, chosen, reason="r", retracted_by="e")
        except DomainError:  # refused by the rules, or the city is not registered yet
            continue


def boundaries(app: Dateline, slug: str) -> tuple[list[date], list[datetime]]:
    """Every date and instant where an answer may change, and either side of it."""
    days: set[date] = set()
    instants: set[datetime] = {app.clock()}
    for e in app.history(slug):
        instants |= {e.recorded_at, e.recorded_at - timedelta(microseconds=1)}
        if e.occurred_on is not None:
            days |= {e.occurred_on, e.occurred_on - timedelta(days=1)}
    for p in app.read_model.periods(slug):
        days |= {p.valid_from, p.valid_from - timedelta(days=1)}
        instants.add(p.known_from)
        if p.valid_to is not None:
            days |= {p.valid_to, p.valid_to - timedelta(days=1)}
        if p.known_to is not None:
            instants |= {p.known_to, p.known_to - timedelta(microseconds=1)}
    return sorted(days), sorted(instants)


def sample_pairs(
    days: list[date], instants: list[datetime], rng: random.Random
) -> list[tuple[date, datetime]]:
    """Every boundary day and instant at least once, the rest at random."""
    pairs = {(d, rng.choice(instants)) for d in days} | {(rng.choice(days), t) for t in instants}
    everything = len(days) * len(instants)
    while len(pairs) < min(PAIRS_PER_CITY, everything):
        pairs.add((rng.choice(days), rng.choice(instants)))
    return sorted(pairs)


def test_read_model_equals_the_aggregate_fold(
    make_settings: Callable[..., Settings], store_kind: str
) -> None:
    clock = ManualClock()
    app = Dateline(make_settings(store_kind, snapshot_interval=3), clock=clock, migrate=True)

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(script=commands)
    def check(script: list[Command]) -> None:
        prefix = f"x{next(examples)}"
        run_script(app, clock, prefix, script)
        rng = random.Random(prefix)
        assert app.read_model.position() == (app.recorder.max_notification_id() or 0)
        slugs = [s for s in app.city_slugs() if s.startswith(prefix + "-")]
        map_pairs: list[tuple[date, datetime]] = []
        for slug in slugs:
            days, instants = boundaries(app, slug)
            for as_of, known_at in sample_pairs(days, instants, rng):
                expected = app.status(slug, as_of, known_at)
                assert app.read_model.status(slug, as_of, known_at) == expected
            for known_at in instants:
                assert app.read_model.timeline(slug, known_at) == app.timeline(slug, known_at)
            assert app.read_model.history(slug) == app.history(slug)
            map_pairs.append((rng.choice(days), rng.choice(instants)))

        for as_of, known_at in map_pairs:
            everyone = {v.city.slug: v for v in app.read_model.statuses(as_of, known_at)}
            for slug in slugs:
                assert everyone[slug] == app.status(slug, as_of, known_at)
            start, end = as_of - timedelta(days=200), as_of
            expected_changes = sorted(
                (
                    e
                    for slug in slugs
                    for e in app.history(slug, known_at)
                    if e.occurred_on is not None and start <= e.occurred_on <= end
                ),
                key=lambda e: (e.occurred_on, e.city, e.version),
            )
            changes = app.read_model.changes(start, end, known_at)
            assert [e for e in changes if e.city in slugs] == expected_changes

    try:
        check()
    finally:
        app.close()
