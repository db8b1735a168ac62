"""The GeoJSON map layer: on PostgreSQL one statement writes it; its bytes are the
ones the Python builder (SQLite's path) writes from the same record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic_core import to_json

from dateline.api.queries import causing_sources
from dateline.api.routers.status import feature_collection
from tests.api.conftest import Api

# Values whose JSON text PostgreSQL and pydantic-core would write differently if
# left to themselves: integral floats, exponents, escapes, non-ASCII, nulls.
AWKWARD = [
    ("plain", {"lat": 34.5, "lon": 69.2}),
    ("integral", {"lat": 36.0, "lon": -70.0, "population": None}),
    ("zero", {"lat": 0.0, "lon": 0.0}),
    ("tiny", {"lat": 0.00001, "lon": -0.000015}),
    ("tinier", {"lat": 1.5e-7, "lon": -2.5e-9}),
    ("small", {"lat": 0.0001, "lon": 0.00012345}),
    ("long-digits", {"lat": 33.123456789012345, "lon": 65.00000000000001}),
    ("quoted", {"name": 'Qal\'a-ye "Now"\\ \t é 中 \u2028', "province": "</script>"}),
]


def python_body(api: Api, as_of: str | None, known_at: datetime) -> bytes:
    app = api.dateline
    views = app.read_model.statuses(
        None if as_of is None else datetime.fromisoformat(as_of).date(), known_at
    )
    return to_json(feature_collection(views, causing_sources(app, views)))


@pytest.mark.parametrize("as_of", [None, "2015-06-01", "2016-06-01", "2014-01-01"])
def test_the_layer_is_the_python_builders_bytes(api: Api, as_of: str | None) -> None:
    for slug, fields in AWKWARD:
        api.register(slug, **fields)
    assert api.report("plain", "Captured", "2016-01-10", "Taliban").status_code == 201
    no_url = {"source": {"name": "Pajhwok"}}
    assert api.report("integral", "Contested", "2015-03-01", "ISKP", **no_url).status_code == 201
    known_at = datetime.now(UTC)
    later = api.report("tiny", "Captured", "2015-02-01", "Taliban")  # after known_at
    assert later.status_code == 201
    params = {"format": "geojson", "known_at": known_at.isoformat()}
    if as_of:
        params["as_of"] = as_of
    response = api.get("/status", params=params)
    assert response.status_code == 200
    assert response.content == python_body(api, as_of, known_at)
    features = response.json()["features"]
    assert [f["id"] for f in features] == sorted(slug for slug, _ in AWKWARD)
    by_slug = {f["id"]: f["properties"] for f in features}
    assert by_slug["tiny"]["version"] == 1  # its report came after known_at
    if as_of == "2016-06-01":
        assert by_slug["plain"]["source_name"] == "Reuters"
        assert (by_slug["integral"]["source_name"], by_slug["integral"]["source_url"]) == (
            "Pajhwok",
            None,
        )
    now = api.get("/status", params={"format": "geojson"})
    assert (
        now.json()["features"][[s for s, _ in sorted(AWKWARD)].index("tiny")]["properties"][
            "version"
        ]
        == 2
    )


def test_postgres_finds_every_city_by_the_index(api: Api) -> None:
    for n in range(30):
        api.register(f"town-{n}")
    read_model = api.dateline.read_model
    known_at = datetime.now(UTC)
    if api.kind == "sqlite":
        assert read_model.geojson(None, known_at) is None  # built in Python instead
        return
    params = {
        "d": known_at.date(),
        "t": known_at,
        "as_of_json": '"x"',
        "known_at_json": '"y"',
    }
    with read_model.cursor() as cursor:
        # Thirty rows are cheaper to scan: forbid that to see whether the
        # statements' box is the index's expression.
        cursor.execute("SET enable_seqscan = off")
        try:
            for statement in (read_model._status_all, read_model._geojson_all):
                cursor.execute("EXPLAIN " + statement, params)
                plan = "\n".join(str(next(iter(row.values()))) for row in cursor.fetchall())
                assert "dateline_control_periods_point" in plan, plan
        finally:
            cursor.execute("RESET enable_seqscan")
