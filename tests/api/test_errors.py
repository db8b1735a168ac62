"""What a client can get wrong: 400, 413, 422, never a 500, never a partial write."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.api.conftest import Api

VALID = {
    "type": "Contested",
    "occurred_on": "2021-06-20",
    "actor": "Taliban",
    "source": {"name": "Reuters"},
}


def post_raw(api: Api, content: bytes, content_type: str | None = "application/json") -> Any:
    headers = {**api.as_("reporter")}
    if content_type:
        headers["Content-Type"] = content_type
    return api.client.post("/cities/testville/events", content=content, headers=headers)


@pytest.fixture
def city(api: Api) -> Api:
    api.register()
    return api


def test_malformed_json_is_400(city: Api) -> None:
    response = post_raw(city, b'{"type": "Contested", "occurred_on": ')
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "content_type", "words"),
    [
        (b'["Contested"]', "application/json", "JSON object"),
        (b'"Contested"', "application/json", "JSON object"),
        (b"null", "application/json", "JSON"),
        (b"", "application/json", "JSON body is required"),
        (b'{"type": "Contested"}', "text/plain", "Content-Type: application/json"),
        (b'{"type": "Contested"}', None, "Content-Type: application/json"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(
    city: Api, content: bytes, content_type: str | None, words: str
) -> None:
    response = post_raw(city, content, content_type)
    assert response.status_code == 400, response.text
    assert words in response.json()["detail"]


def test_body_over_64_kib_is_413(city: Api) -> None:
    body = {**VALID, "note": "x" * (64 * 1024)}
    response = city.post("/cities/testville/events", "reporter", json=body)
    assert response.status_code == 413
    assert "64 KiB" in response.json()["detail"]
    just_under = {**VALID, "note": "x" * 3000}
    assert city.post("/cities/testville/events", "reporter", json=just_under).status_code == 201
    assert len(city.events("testville")) == 2


def test_chunked_body_over_64_kib_is_413(city: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"type": "Contested", "note": "'
        for _ in range(80):
            yield b"y" * 1024
        yield b'"}'

    response = city.client.post(
        "/cities/testville/events",
        content=chunks(),
        headers={**city.as_("reporter"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert len(city.events("testville")) == 1


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"occurred_on": "20/06/2021"}, "occurred_on", "YYYY-MM-DD"),
        ({"occurred_on": "2021-06-31"}, "occurred_on", "calendar date"),
        ({"occurred_on": 1624147200}, "occurred_on", "YYYY-MM-DD"),
        ({"occurred_on": "2999-01-01"}, "occurred_on", "in the future"),
        ({"occurred_on": "2001-09-11"}, "occurred_on", "before"),
        ({"type": "Liberated"}, "type", "'Contested', 'Captured' or 'Retaken'"),
        ({"type": "contested"}, "type", "'Contested'"),
        ({"actor": None}, "actor", "string"),
        ({"actor": "  "}, "actor", "must not be empty"),
        ({"actor": "x" * 201}, "actor", "longer than 200"),
        ({"source": {"url": "https://example.org"}}, "source.name", "Field required"),
        ({"source": {"name": ""}}, "source.name", "must not be empty"),
        ({"source": {"name": "AP", "author": "me"}}, "source.author", "unknown field"),
        ({"reported_by": "someone else"}, "reported_by", "from your token"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"note": "n" * 4001}, "note", "longer than 4000"),
        ({"actor": "Tali\u0000ban"}, "actor", "U+0000"),
        ({"source": {"name": "AP\u001b[31m"}}, "source.name", "U+001B"),
    ],
)
def test_field_errors_are_422_naming_the_field(
    city: Api, change: dict[str, Any], field: str, words: str
) -> None:
    body = {**VALID, **change}
    response = city.post("/cities/testville/events", "reporter", json=body)
    assert response.status_code == 422, response.text
    items = response.json()["detail"]
    assert [item["field"] for item in items] == [field], items
    assert words in items[0]["msg"]
    assert items[0]["loc"][0] == "body"
    assert len(city.events("testville")) == 1


def test_missing_actor_is_422(city: Api) -> None:
    body = {k: v for k, v in VALID.items() if k != "actor"}
    response = city.post("/cities/testville/events", "reporter", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "actor"], "field": "actor", "msg": "Field required", "type": "missing"}
    ]


def test_several_field_errors_are_all_named(city: Api) -> None:
    body = {"type": "Liberated", "occurred_on": "soon", "source": {"name": "AP"}}
    response = city.post("/cities/testville/events", "reporter", json=body)
    assert response.status_code == 422
    assert {item["field"] for item in response.json()["detail"]} == {
        "type",
        "occurred_on",
        "actor",
    }


def test_report_to_an_unknown_city_is_404(city: Api) -> None:
    response = city.post("/cities/nowhere/events", "reporter", json=VALID)
    assert response.status_code == 404
    assert "nowhere" in response.json()["detail"]


WEIRD_BODIES: list[Any] = [
    {},
    [],
    0,
    1.5,
    True,
    "",
    {"type": None},
    {"type": ["Contested"]},
    {**VALID, "occurred_on": None},
    {**VALID, "occurred_on": "0000-00-00"},
    {**VALID, "occurred_on": "9999-12-31"},
    {**VALID, "occurred_on": "0001-01-01"},
    {**VALID, "source": None},
    {**VALID, "source": "Reuters"},
    {**VALID, "source": {"name": {"nested": True}}},
    {**VALID, "actor": "\u0000"},
    {**VALID, "note": "line\u0000break"},
    {**VALID, "report_id": ""},
    {**VALID, "report_id": "r" * 1000},
    {**VALID, "note": 12},
    {**VALID, "type": "Retracted"},
    {**VALID, "type": "Registered"},
]


def test_odd_bodies_never_500_and_never_write(city: Api) -> None:
    for body in WEIRD_BODIES:
        response = city.post("/cities/testville/events", "reporter", json=body)
        assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
        assert "detail" in response.json()
    for raw in (b"\xff\xfe", b"{" * 5000, b'{"a": ' * 2000, b"NaN", b'{"type": NaN}'):
        response = post_raw(city, raw)
        assert 400 <= response.status_code < 500, (raw[:20], response.status_code)
    # A lone surrogate (escaped in JSON) cannot be stored as UTF-8: refused, not a 500.
    lone = b'{"type": "Contested", "occurred_on": "2021-06-20", "actor": "\\ud800 Taliban", '
    response = post_raw(city, lone + b'"source": {"name": "AP"}}')
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "actor"
    odd_params = [
        {"as_of": "0000-01-01"},
        {"as_of": "9999-12-31"},
        {"known_at": "9999-12-31T23:59:59+14:00"},
        {"known_at": "0001-01-01T00:00:00-12:00"},
        {"as_of": "\u0000"},
    ]
    for params in odd_params:
        response = city.get("/cities/testville/status", params=params)
        assert response.status_code < 500, (params, response.text)
    for overflowing in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        response = city.get("/cities/testville/status", params={"known_at": overflowing})
        assert response.status_code == 422
        assert "out of range" in response.json()["detail"][0]["msg"]
    for number in (b"NaN", b"Infinity", b"-1e400"):
        raw = b'{"slug": "odd", "name": "Odd", "province": "P", "country": "C", "lat": '
        raw += number + b', "lon": 1, "initial_controller": "G", "tracked_since": "2015-01-01"}'
        response = city.client.post(
            "/cities",
            content=raw,
            headers={**city.as_("editor"), "Content-Type": "application/json"},
        )
        assert (response.status_code, response.json()["detail"][0]["field"]) == (422, "lat")
    for path in ("/cities/%00", "/cities/" + "a" * 3000, "/cities/x%2Fy/events"):
        assert city.get(path).status_code < 500
    assert len(city.events("testville")) == 1


def test_a_read_model_that_refuses_an_append_degrades_that_city_only(city: Api) -> None:
    """The read model already holds a row where testville's next event must go
    (damage): the append is still recorded (the log is the truth), testville is
    marked degraded, its reads say so, /health names it, other cities are read
    and written, and a rebuild repairs it."""
    city.register("otherville")
    store = city.dateline.read_model
    uid = store.dialect.uid(city.dateline.find_city("testville").id)  # type: ignore[union-attr]
    with city.dateline.projection._write() as cursor:
        cursor.execute(
            store.dialect.sql(
                "INSERT INTO {facts} (city_id, version, slug, event_type, recorded_at) "
                "VALUES (%s, 2, 'testville', 'Planted', %s)"
            ),
            (uid, store.dialect.instant(datetime(2000, 1, 1, tzinfo=UTC))),
        )
    body = {**VALID, "report_id": "r-degraded"}
    first = city.post("/cities/testville/events", "reporter", json=body)
    assert first.status_code == 201, first.text  # recorded
    assert [e["id"] for e in city.events("otherville")] == ["otherville-1"]
    again = city.post("/cities/testville/events", "reporter", json=body)
    assert again.status_code == 200 and again.json()["id"] == "testville-2"  # a repeat
    status = city.get("/cities/testville/status", params={"as_of": "2021-06-21"})
    assert status.status_code == 503
    assert status.json()["event_id"] == "testville-2" and "rebuild" in status.json()["detail"]
    health = city.get("/health")
    assert health.status_code == 503
    assert [d["city"] for d in health.json()["degraded"]] == ["testville"]
    other = city.report("otherville", "Contested", "2021-06-20", "Taliban")
    assert other.status_code == 201
    assert city.get("/cities/otherville/status").status_code == 200

    assert city.dateline.projection.rebuild() == 4
    assert city.get("/health").status_code == 200
    status = city.get("/cities/testville/status", params={"as_of": "2021-06-21"}).json()
    assert status["status"] == "contested" and status["version"] == 2
    assert city.dateline.check_read_model()[0] == []
