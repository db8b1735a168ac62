"""Writes through HTTP: register, report, retract; idempotency, If-Match, the rules
of control, and known_at, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tests.api.conftest import Api, city_body
from tests.conftest import ManualClock


# ------------------------------------------------------------------ cities
def test_register_city(api: Api) -> None:
    response = api.post("/cities", "editor", json=city_body("herat-test"))
    assert response.status_code == 201
    assert response.headers["location"].endswith("/cities/herat-test")
    assert response.headers["etag"] == '"1"'
    body = response.json()
    assert (body["slug"], body["name"], body["tracked_since"]) == (
        "herat-test",
        "Herat Test",
        "2015-01-01",
    )
    assert (body["status"]["status"], body["status"]["controller"]) == (
        "held",
        "Afghan government",
    )
    read = api.get(response.headers["location"])
    assert (read.status_code, read.json()) == (200, body | {"status": read.json()["status"]})
    assert api.get("/cities").json()[0]["slug"] == "herat-test"


def test_register_an_existing_slug_is_409(api: Api) -> None:
    api.register("kunduz")
    again = api.post("/cities", "editor", json=city_body("kunduz", name="Other"))
    assert again.status_code == 409
    assert "kunduz" in again.json()["detail"] and "already registered" in again.json()["detail"]
    assert api.get("/cities/kunduz").json()["name"] == "Kunduz"


def test_register_city_field_errors(api: Api) -> None:
    cases = {
        "slug": city_body("Not A Slug"),
        "lat": city_body("a", lat=123.0),
        "lon": city_body("a", lon="east"),
        "population": city_body("a", population=10**30),
        "tracked_since": city_body("b", tracked_since="2999-01-01"),
        "name": city_body("c", name="   "),
        "initial_controller": {
            k: v for k, v in city_body("d").items() if k != "initial_controller"
        },
    }
    for field, body in cases.items():
        response = api.post("/cities", "editor", json=body)
        assert response.status_code == 422, (field, response.text)
        assert [item["field"] for item in response.json()["detail"]] == [field]
    assert api.get("/cities").json() == []


# ------------------------------------------------------------------ report
def test_report_an_event(api: Api) -> None:
    api.register()
    response = api.report(
        "testville",
        "Contested",
        "2021-06-20",
        "Taliban",
        note="Fighting at the city gates",
        source={"name": "Reuters", "url": "https://example.org/1", "quote": "heavy fighting"},
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["id"] == "testville-2"
    assert (event["type"], event["occurred_on"], event["actor"]) == (
        "Contested",
        "2021-06-20",
        "Taliban",
    )
    assert event["source"] == {
        "name": "Reuters",
        "url": "https://example.org/1",
        "quote": "heavy fighting",
    }
    assert (event["reported_by"], event["note"], event["retracted"]) == (
        "reporter-token",
        "Fighting at the city gates",
        None,
    )
    assert response.headers["etag"] == '"2"'
    location = response.headers["location"]
    assert location.endswith("/cities/testville/events/testville-2")
    assert api.get(location).json() == event
    status = api.get("/cities/testville/status", params={"as_of": "2021-06-21"}).json()
    assert (status["status"], status["contested_by"], status["event_id"]) == (
        "contested",
        "Taliban",
        "testville-2",
    )


def test_repeat_with_the_same_report_id_writes_nothing(api: Api) -> None:
    api.register()
    first = api.report("testville", "Captured", "2021-08-08", "Taliban", report_id="r-1")
    assert first.status_code == 201
    again = api.report("testville", "Captured", "2021-08-08", "Taliban", report_id="r-1")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert len(api.events("testville")) == 2
    assert api.get("/health").json()["events"] == 2


def test_repeat_with_the_same_idempotency_key_writes_nothing(api: Api) -> None:
    api.register()
    key = {"Idempotency-Key": "assault-2021-06-20"}
    first = api.report("testville", "Contested", "2021-06-20", "Taliban", headers=key)
    assert first.status_code == 201
    assert first.json()["report_id"] == "assault-2021-06-20"
    again = api.report("testville", "Contested", "2021-06-20", "Taliban", headers=key)
    assert (again.status_code, again.json()) == (200, first.json())
    same_in_body = api.report(
        "testville", "Contested", "2021-06-20", "Taliban", report_id="assault-2021-06-20"
    )
    assert (same_in_body.status_code, same_in_body.json()["id"]) == (200, "testville-2")
    assert len(api.events("testville")) == 2


def test_report_id_reused_for_a_different_report_is_422(api: Api) -> None:
    api.register()
    assert api.report("testville", "Contested", "2021-06-20", "Taliban", report_id="x").is_success
    other = api.report("testville", "Contested", "2021-06-21", "ISKP", report_id="x")
    assert other.status_code == 422
    (item,) = other.json()["detail"]
    assert item["field"] == "report_id" and "testville-2" in item["msg"]
    by_header = api.report(
        "testville", "Contested", "2021-06-21", "ISKP", headers={"Idempotency-Key": "x"}
    )
    assert by_header.status_code == 422
    assert by_header.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    both = api.report(
        "testville",
        "Contested",
        "2021-06-21",
        "ISKP",
        report_id="y",
        headers={"Idempotency-Key": "z"},
    )
    assert both.status_code == 422
    assert both.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert len(api.events("testville")) == 2


def test_if_match(api: Api) -> None:
    etag = api.register().headers["etag"]
    assert etag == '"1"'
    ok = api.report("testville", "Contested", "2021-06-20", "Taliban", headers={"If-Match": etag})
    assert (ok.status_code, ok.headers["etag"]) == (201, '"2"')
    stale = api.report("testville", "Contested", "2021-06-21", "ISKP", headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.headers["etag"] == '"2"'
    assert stale.json()["current_version"] == 2
    assert "version 2, not 1" in stale.json()["detail"]
    anything = api.report("testville", "Contested", "2021-06-21", "ISKP", headers={"If-Match": "*"})
    assert anything.status_code == 201
    garbage = api.report(
        "testville", "Contested", "2021-06-22", "NRF", headers={"If-Match": "yesterday"}
    )
    assert garbage.status_code == 400
    assert "If-Match" in garbage.json()["detail"]
    assert len(api.events("testville")) == 3


def test_a_retried_report_with_a_stale_if_match_gets_the_original(api: Api) -> None:
    api.register()
    headers = {"If-Match": '"1"', "Idempotency-Key": "k-1"}
    first = api.report("testville", "Contested", "2021-06-20", "Taliban", headers=headers)
    assert first.status_code == 201
    retry = api.report("testville", "Contested", "2021-06-20", "Taliban", headers=headers)
    assert (retry.status_code, retry.json()) == (200, first.json())
    other = api.report(
        "testville", "Contested", "2021-06-21", "ISKP", headers={**headers, "Idempotency-Key": "k2"}
    )
    assert other.status_code == 412


def test_if_match_on_retraction(api: Api) -> None:
    api.register()
    assert api.report("testville", "Contested", "2021-06-20", "Taliban").status_code == 201
    url = "/cities/testville/events/testville-2/retraction"
    stale = api.post(url, "editor", json={"reason": "wrong"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    ok = api.post(url, "editor", json={"reason": "wrong"}, headers={"If-Match": '"2"'})
    assert (ok.status_code, ok.headers["etag"]) == (201, '"3"')


# ----------------------------------------------------------- rules: 409
def test_report_breaking_a_rule_is_409_naming_rule_and_event(api: Api) -> None:
    api.register()
    assert api.report("testville", "Captured", "2021-08-08", "Taliban").status_code == 201
    response = api.report("testville", "Contested", "2021-08-10", "Taliban")
    assert response.status_code == 409
    body = response.json()
    assert body["rule"] == "contested-by-controller"
    assert body["conflicting_event"] == "testville-2"
    assert body["is_later_event"] is False
    assert "contested-by-controller" in body["detail"] and "testville-2" in body["detail"]
    retaken = api.report("testville", "Retaken", "2021-08-09", "NRF")
    assert retaken.status_code == 409
    assert retaken.json()["rule"] == "retaken-requires-prior-control"
    assert len(api.events("testville")) == 2


def test_backdated_report_that_breaks_a_later_event_is_409(api: Api) -> None:
    api.register()
    assert api.report("testville", "Captured", "2021-08-08", "Taliban").status_code == 201
    # Taliban capturing it earlier would make the 8 August capture a capture by the controller.
    response = api.report("testville", "Captured", "2021-08-01", "Taliban")
    assert response.status_code == 409
    body = response.json()
    assert (body["rule"], body["conflicting_event"], body["is_later_event"]) == (
        "captured-by-controller",
        "testville-2",
        True,
    )
    assert "testville-2" in body["detail"]
    assert len(api.events("testville")) == 2


# -------------------------------------------------------------- retraction
def test_retract_an_event(make_api: Callable[..., Api]) -> None:
    clock = ManualClock(datetime(2021, 9, 1, 12, 0, tzinfo=UTC))
    api = make_api(clock)
    api.register()
    clock.advance(hours=1)
    assert api.report("testville", "Captured", "2021-08-08", "Taliban").status_code == 201
    clock.advance(hours=1)
    response = api.post(
        "/cities/testville/events/testville-2/retraction",
        "editor",
        json={"reason": "The source withdrew the story"},
    )
    assert response.status_code == 201, response.text
    retraction = response.json()
    assert (retraction["id"], retraction["type"], retraction["retracts"]) == (
        "testville-3",
        "Retracted",
        "testville-2",
    )
    assert (retraction["reason"], retraction["reported_by"]) == (
        "The source withdrew the story",
        "editor-token",
    )
    assert response.headers["location"].endswith("/cities/testville/events/testville-3")
    withdrawn = api.events("testville")[1]
    assert withdrawn["retracted"] == {
        "event_id": "testville-3",
        "reason": "The source withdrew the story",
        "retracted_by": "editor-token",
        "recorded_at": "2021-09-01T14:00:00Z",
    }
    now = api.get("/cities/testville/status", params={"as_of": "2021-08-09"}).json()
    assert now["controller"] == "Afghan government"
    # As known before the retraction, the capture stood.
    then = api.get(
        "/cities/testville/status",
        params={"as_of": "2021-08-09", "known_at": "2021-09-01T13:30:00Z"},
    ).json()
    assert (then["controller"], then["version"]) == ("Taliban", 2)
    before = api.events("testville", known_at="2021-09-01T13:30:00+00:00")
    assert [e["retracted"] for e in before] == [None, None]
    # /changes leaves retracted events out unless asked.
    window = {"from": "2021-08-01", "to": "2021-08-31"}
    assert api.get("/changes", params=window).json() == []
    listed = api.get("/changes", params={**window, "include_retracted": "true"}).json()
    assert [(e["id"], e["retracted"]["event_id"]) for e in listed] == [
        ("testville-2", "testville-3")
    ]
    as_then = api.get("/changes", params={**window, "known_at": "2021-09-01T13:30:00Z"}).json()
    assert [e["id"] for e in as_then] == ["testville-2"]


def test_retraction_errors(api: Api) -> None:
    api.register()
    assert api.report("testville", "Contested", "2021-06-20", "Taliban").status_code == 201
    assert api.report("testville", "Captured", "2021-08-08", "Taliban").status_code == 201

    def retract(event_id: str, body: object, slug: str = "testville") -> tuple[int, object]:
        url = f"/cities/{slug}/events/{event_id}/retraction"
        response = api.post(url, "editor", json=body)
        return response.status_code, response.json()

    status, body = retract("testville-9", {"reason": "x"})
    assert status == 404 and "testville-9" in str(body)
    status, body = retract("testville-1", {"reason": "x"})  # the registration
    assert status == 404
    status, body = retract("testville-2", {"reason": "x"}, slug="nowhere")
    assert status == 404 and "nowhere" in str(body)
    status, body = retract("testville-2", {"reason": "   "})
    assert status == 422 and body["detail"][0]["field"] == "reason"  # type: ignore[index]
    status, body = retract("testville-2", {})
    assert status == 422 and body["detail"][0]["field"] == "reason"  # type: ignore[index]
    status, body = retract("testville-2", {"reason": "x", "retracted_by": "someone else"})
    assert status == 422 and body["detail"][0]["field"] == "retracted_by"  # type: ignore[index]
    assert len(api.events("testville")) == 3

    # Retracting the capture is fine; then retaking is refused while Taliban never held it...
    assert retract("testville-3", {"reason": "premature"})[0] == 201
    status, body = retract("testville-3", {"reason": "again"})
    assert status == 409 and "already retracted" in body["detail"]  # type: ignore[index]
    assert len(api.events("testville")) == 4


def test_retraction_that_would_break_a_later_event_is_409(api: Api) -> None:
    api.register()
    assert api.report("testville", "Captured", "2021-08-08", "Taliban").status_code == 201
    assert api.report("testville", "Retaken", "2021-08-20", "Afghan government").status_code == 201
    response = api.post(
        "/cities/testville/events/testville-2/retraction", "editor", json={"reason": "x"}
    )
    assert response.status_code == 409
    body = response.json()
    assert body["rule"] == "retaken-requires-prior-control"
    assert (body["conflicting_event"], body["is_later_event"]) == ("testville-3", True)
    assert len(api.events("testville")) == 3


# --------------------------------------------------------------- known_at
def test_as_known_at(make_api: Callable[..., Api]) -> None:
    clock = ManualClock(datetime(2021, 8, 1, 9, 0, tzinfo=UTC))
    api = make_api(clock)
    api.register()
    clock.advance(days=7)  # 2021-08-08T09:00Z: the capture is reported
    assert api.report("testville", "Captured", "2021-08-08", "Taliban").status_code == 201
    clock.advance(days=1)
    as_of = {"as_of": "2021-08-08"}
    early = {**as_of, "known_at": "2021-08-08T08:59:59Z"}
    late = {**as_of, "known_at": "2021-08-08T09:00:00Z"}
    assert api.get("/cities/testville/status", params=early).json()["controller"] == (
        "Afghan government"
    )
    assert api.get("/cities/testville/status", params=late).json()["controller"] == "Taliban"
    timeline = api.get("/cities/testville/timeline", params=early)
    assert (len(timeline.json()), timeline.headers["etag"]) == (1, '"1"')
    assert len(api.get("/cities/testville/timeline").json()) == 2
    in_kabul_time = {**as_of, "known_at": "2021-08-08T13:30:00+04:30"}  # 09:00Z
    assert api.get("/cities/testville/status", params=in_kabul_time).json()["version"] == 2
    statuses = api.get("/status", params=early).json()
    assert [s["controller"] for s in statuses] == ["Afghan government"]
    window = {"from": "2021-08-01", "to": "2021-08-31"}
    changes = api.get("/changes", params={**window, "known_at": late["known_at"]})
    assert [c["id"] for c in changes.json()] == ["testville-2"]
