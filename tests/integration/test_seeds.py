"""Acceptance from the seeds: Kunduz through six years of war."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date

import pytest

from dateline.domain.control import EventType, Source, Status
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings
from dateline.seeds.loader import SEEDS_DIR, load_seeds
from tests.conftest import ManualClock

GOV, TALIBAN = "Afghan government", "Taliban"


@pytest.fixture
def seeded(settings: Settings, clock: ManualClock) -> Iterator[Dateline]:
    app = Dateline(settings, clock=clock, migrate=True)
    load_seeds(app)
    yield app
    app.close()


def read_csv(name: str) -> list[dict[str, str]]:
    with open(SEEDS_DIR / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    ("as_of", "status", "controller", "contested_by", "since"),
    [
        ("2015-09-27", Status.HELD, GOV, None, "2015-01-01"),
        ("2015-09-28", Status.HELD, TALIBAN, None, "2015-09-28"),
        ("2015-10-02", Status.HELD, GOV, None, "2015-10-01"),
        ("2016-10-03", Status.CONTESTED, GOV, TALIBAN, "2016-10-03"),
        ("2016-10-05", Status.HELD, GOV, None, "2016-10-04"),
        ("2021-08-07", Status.CONTESTED, GOV, TALIBAN, "2021-06-20"),
        ("2021-08-08", Status.HELD, TALIBAN, None, "2021-08-08"),
        ("2014-12-31", Status.UNKNOWN, None, None, None),
    ],
)
def test_kunduz_as_of(
    seeded: Dateline, as_of: str, status: Status, controller: str | None,
    contested_by: str | None, since: str | None,
) -> None:  # fmt: skip
    state = seeded.status("kunduz", date.fromisoformat(as_of)).state
    assert (state.status, state.controller, state.contested_by) == (
        status,
        controller,
        contested_by,
    )
    assert state.since == (date.fromisoformat(since) if since else None)


def test_loading_twice_adds_nothing(seeded: Dateline) -> None:
    rows = read_csv("control_events.csv")
    cities = read_csv("cities.csv")
    assert seeded.count_events() == len(rows) + len(cities)
    again = load_seeds(seeded)
    assert (again.cities_registered, again.events_written) == (0, 0)
    assert again.events_already_present == len(rows)
    assert seeded.count_events() == len(rows) + len(cities)


def test_every_seeded_event_keeps_its_source_url(seeded: Dateline) -> None:
    rows = read_csv("control_events.csv")
    urls = {
        e.source.url
        for slug in seeded.city_slugs()
        for e in seeded.history(slug)
        if e.source is not None
    }
    assert urls == {r["source_url"] for r in rows}


def test_the_fall_of_the_capitals_in_august_2021(seeded: Dateline) -> None:
    held = [
        slug for slug in seeded.city_slugs()
        if seeded.status(slug, date(2021, 8, 15)).state.controller == TALIBAN
    ]  # fmt: skip
    assert "kabul" in held and "kandahar" in held and "herat" in held
    assert seeded.status("bazarak", date(2021, 8, 15)).state.status is Status.UNKNOWN
    assert seeded.status("bazarak", date(2021, 9, 6)).state.controller == TALIBAN


def test_a_backdated_report_changes_the_seeded_answer_only_after_it_is_recorded(
    seeded: Dateline, clock: ManualClock
) -> None:
    before = clock.advance(hours=1)
    clock.advance(hours=1)
    # WSJ: fighting in the city went on for two days before Sunday 8 August.
    seeded.report("kunduz", EventType.CONTESTED, occurred_on=date(2015, 9, 26), actor=TALIBAN,
                  source=Source("WSJ"), reported_by="desk")  # fmt: skip
    after = clock.advance(hours=1)
    then = seeded.status("kunduz", date(2015, 9, 27), known_at=before).state
    now = seeded.status("kunduz", date(2015, 9, 27), known_at=after).state
    assert (then.status, then.controller) == (Status.HELD, GOV)
    assert (now.status, now.contested_by, now.since) == (
        Status.CONTESTED, TALIBAN, date(2015, 9, 26),
    )  # fmt: skip
