"""Reads over the seeded 2015-2021 timeline, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from tests.api.conftest import Api

# Kunduz acceptance: (as_of, status, controller, contested_by, since)
KUNDUZ = [
    ("2015-09-27", "held", "Afghan government", None, "2015-01-01"),
    ("2015-09-28", "held", "Taliban", None, "2015-09-28"),
    ("2015-10-02", "held", "Afghan government", None, "2015-10-01"),
    ("2016-10-03", "contested", "Afghan government", "Taliban", "2016-10-03"),
    ("2016-10-05", "held", "Afghan government", None, "2016-10-04"),
    ("2021-08-07", "contested", "Afghan government", "Taliban", "2021-06-20"),
    ("2021-08-08", "held", "Taliban", None, "2021-08-08"),
]
STATUS_KEYS = {
    "city",
    "as_of",
    "known_at",
    "status",
    "controller",
    "contested_by",
    "since",
    "event_id",
    "version",
}
EVENT_KEYS = {
    "id",
    "city",
    "type",
    "occurred_on",
    "actor",
    "source",
    "note",
    "report_id",
    "reported_by",
    "recorded_at",
    "version",
    "retracted",
}


def test_health(seeded: Api) -> None:
    response = seeded.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "store": seeded.kind,
        "events": 89,
        "position": 89,
        "degraded": [],
    }


@pytest.mark.parametrize(("as_of", "status", "controller", "contested_by", "since"), KUNDUZ)
def test_kunduz_acceptance(
    seeded: Api,
    as_of: str,
    status: str,
    controller: str,
    contested_by: str | None,
    since: str,
) -> None:
    response = seeded.get("/cities/kunduz/status", params={"as_of": as_of})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == STATUS_KEYS
    assert (body["city"], body["as_of"]) == ("kunduz", as_of)
    assert (body["status"], body["controller"], body["contested_by"], body["since"]) == (
        status,
        controller,
        contested_by,
        since,
    )
    assert body["event_id"].startswith("kunduz-")
    assert response.headers["etag"] == f'"{body["version"]}"' == '"10"'


def test_status_defaults_to_now_and_unknown_before_the_record(seeded: Api) -> None:
    body = seeded.get("/cities/kunduz/status").json()
    assert body["as_of"] == date.today().isoformat() or body["as_of"] == body["known_at"][:10]
    assert (body["status"], body["controller"]) == ("held", "Taliban")
    before = seeded.get("/cities/kunduz/status", params={"as_of": "2014-12-31"}).json()
    assert (before["status"], before["controller"], before["event_id"]) == ("unknown", None, None)


def test_known_at_before_anything_was_recorded(seeded: Api) -> None:
    params = {"as_of": "2021-08-08", "known_at": "2000-01-01T00:00:00Z"}
    response = seeded.get("/cities/kunduz/status", params=params)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["version"]) == ("unknown", 0)
    events = seeded.get("/cities/kunduz/events", params={"known_at": "2000-01-01T00:00:00Z"})
    assert (events.status_code, events.json(), events.headers["etag"]) == (200, [], '"0"')
    timeline = seeded.get("/cities/kunduz/timeline", params={"known_at": "2000-01-01T00:00:00Z"})
    assert (timeline.status_code, timeline.json()) == (200, [])


def test_known_at_accepts_an_unencoded_plus(seeded: Api) -> None:
    response = seeded.get("/cities/kunduz/status?known_at=2100-01-01T00:00:00+00:00")
    assert response.status_code == 200, response.text
    assert response.json()["known_at"].startswith("2100-01-01T00:00:00")


def test_list_cities_with_current_status(seeded: Api) -> None:
    response = seeded.get("/cities")
    assert response.status_code == 200
    cities = response.json()
    assert len(cities) == 32
    assert [c["slug"] for c in cities] == sorted(c["slug"] for c in cities)
    kunduz = next(c for c in cities if c["slug"] == "kunduz")
    assert kunduz["name"] == "Kunduz" and kunduz["lat"] == pytest.approx(36.7286)
    assert set(kunduz["status"]) == STATUS_KEYS
    assert (kunduz["status"]["status"], kunduz["status"]["controller"]) == ("held", "Taliban")
    kabul = next(c for c in cities if c["slug"] == "kabul")
    assert kabul["status"]["since"] == "2021-08-15"


def test_get_city(seeded: Api) -> None:
    response = seeded.get("/cities/kunduz")
    assert response.status_code == 200
    body = response.json()
    assert body["slug"] == "kunduz" and body["tracked_since"] == "2015-01-01"
    assert body["status"]["event_id"] == "kunduz-10"
    assert response.headers["etag"] == '"10"'


def test_timeline(seeded: Api) -> None:
    response = seeded.get("/cities/kunduz/timeline")
    assert response.status_code == 200
    assert response.headers["etag"] == '"10"'
    intervals = response.json()
    assert set(intervals[0]) == {"from", "to", "status", "controller", "contested_by", "event_id"}
    assert intervals[0] == {
        "from": "2015-01-01",
        "to": "2015-09-28",
        "status": "held",
        "controller": "Afghan government",
        "contested_by": None,
        "event_id": "kunduz-1",
    }
    assert intervals[-1]["to"] is None
    assert (intervals[-1]["from"], intervals[-1]["controller"]) == ("2021-08-08", "Taliban")
    for earlier, later in itertools.pairwise(intervals):
        assert earlier["to"] == later["from"]


def test_events_in_recording_order(seeded: Api) -> None:
    response = seeded.get("/cities/kunduz/events")
    assert response.status_code == 200
    events = response.json()
    assert [e["version"] for e in events] == list(range(1, 11))
    assert response.headers["etag"] == '"10"'
    assert set(events[2]) >= EVENT_KEYS
    captured = events[2]
    assert captured["id"] == "kunduz-3"
    assert (captured["type"], captured["occurred_on"], captured["actor"]) == (
        "Captured",
        "2015-09-28",
        "Taliban",
    )
    assert captured["source"] == {
        "name": "dawn.com",
        "url": "https://www.dawn.com/news/1209540",
        "quote": None,
    }
    assert (captured["reported_by"], captured["retracted"]) == ("seed", None)
    assert captured["report_id"] == "seed:kunduz:2015-09-28:captured"
    assert events[0]["type"] == "Registered"


def test_one_event(seeded: Api) -> None:
    response = seeded.get("/cities/kunduz/events/kunduz-3")
    assert response.status_code == 200
    assert response.json()["type"] == "Captured"
    missing = seeded.get("/cities/kunduz/events/kunduz-99")
    assert missing.status_code == 404
    assert "kunduz-99" in missing.json()["detail"]


@pytest.mark.parametrize("path", ["", "/status", "/timeline", "/events", "/events/kunduz-1"])
def test_unknown_city_is_404(seeded: Api, path: str) -> None:
    response = seeded.get(f"/cities/kunduzz{path}")
    assert response.status_code == 404
    assert response.json()["detail"] == "no city 'kunduzz' is registered (did you mean 'kunduz'?)"


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"as_of": "28/09/2015"}, "as_of", "YYYY-MM-DD"),
        ({"as_of": "2015-02-30"}, "as_of", "not a calendar date"),
        ({"known_at": "2021-08-08T12:00:00"}, "known_at", "no time zone"),
        ({"known_at": "2021-08-32"}, "known_at", "not a calendar date"),
        ({"known_at": "yesterday"}, "known_at", "ISO 8601"),
    ],
)
def test_bad_query_parameters_are_422_naming_the_field(
    seeded: Api, params: dict[str, str], field: str, words: str
) -> None:
    response = seeded.get("/cities/kunduz/status", params=params)
    assert response.status_code == 422
    (item,) = response.json()["detail"]
    assert (item["loc"], item["field"]) == (["query", field], field)
    assert words in item["msg"]


def test_all_statuses_on_a_date(seeded: Api) -> None:
    response = seeded.get("/status", params={"as_of": "2021-08-08"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    statuses = {s["city"]: s for s in response.json()}
    assert len(statuses) == 32
    assert (statuses["kunduz"]["controller"], statuses["kunduz"]["name"]) == ("Taliban", "Kunduz")
    assert statuses["kabul"]["controller"] == "Afghan government"
    assert statuses["zaranj"]["controller"] == "Taliban"  # fell on 6 August
    assert all(s["as_of"] == "2021-08-08" for s in statuses.values())
    after = {s["city"]: s for s in seeded.get("/status?as_of=2021-08-16").json()}
    assert {s["controller"] for s in after.values() if s["status"] != "unknown"} == {"Taliban"}
    assert after["bazarak"]["status"] == "unknown"  # its record begins later


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"format": "geojson"}, {}), ({}, {"Accept": "application/geo+json"})],
)
def test_all_statuses_as_geojson(
    seeded: Api, params: dict[str, str], headers: dict[str, str]
) -> None:
    params = {**params, "as_of": "2016-10-03"}
    response = seeded.get("/status", params=params, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == 32
    kunduz = next(f for f in collection["features"] if f["id"] == "kunduz")
    assert kunduz["type"] == "Feature"
    assert kunduz["geometry"] == {"type": "Point", "coordinates": [68.8681, 36.7286]}
    assert kunduz["properties"]["status"] == "contested"
    assert kunduz["properties"]["contested_by"] == "Taliban"
    assert kunduz["properties"]["as_of"] == "2016-10-03"


def test_format_must_be_known(seeded: Api) -> None:
    response = seeded.get("/status", params={"format": "kml"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "format"


def test_changes_the_fall_of_the_provincial_capitals(seeded: Api) -> None:
    response = seeded.get("/changes", params={"from": "2021-08-06", "to": "2021-08-15"})
    assert response.status_code == 200
    changes = response.json()
    days = [c["occurred_on"] for c in changes]
    assert days == sorted(days)
    assert days[0] == "2021-08-06" and days[-1] == "2021-08-15"
    assert len(changes) == 32
    assert {c["type"] for c in changes} <= {"Contested", "Captured", "Retaken"}
    assert sum(c["type"] == "Captured" for c in changes) == 31
    kunduz = [c for c in changes if c["city"] == "kunduz"]
    assert [(c["id"], c["occurred_on"]) for c in kunduz] == [("kunduz-10", "2021-08-08")]
    assert changes[-1]["city"] in {"jalalabad", "khost", "maidan-shahr", "bamyan", "kabul"} or (
        changes[-1]["occurred_on"] == "2021-08-15"
    )


def test_changes_on_one_day_and_before_anything_known(seeded: Api) -> None:
    one_day = seeded.get("/changes", params={"from": "2015-09-28", "to": "2015-09-28"}).json()
    assert [(c["id"], c["type"]) for c in one_day] == [
        ("kunduz-2", "Contested"),
        ("kunduz-3", "Captured"),
    ]
    params = {"from": "2015-01-01", "to": "2021-12-31", "known_at": "2000-01-01T00:00:00Z"}
    assert seeded.get("/changes", params=params).json() == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "2021-08-15"}, "from"),
        ({"from": "2021-08-15", "to": "2021-08-06"}, "to"),
        ({"from": "15 August 2021"}, "from"),
    ],
)
def test_changes_bad_range_is_422(seeded: Api, params: dict[str, str], field: str) -> None:
    response = seeded.get("/changes", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == field


def test_unknown_path_is_a_json_404(seeded: Api) -> None:
    response = seeded.get("/nowhere")
    assert response.status_code == 404
    assert "detail" in response.json()
