"""Exports for data journalists: CSV over HTTP and on the command line, GeoJSON with
who says so, and /status with coordinates. Read back by Python's csv module, by
GDAL (ogr2ogr / ogrinfo, as QGIS would) and by the geojson-pydantic models."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from geojson_pydantic import FeatureCollection

from dateline.api.exports import CHANGES_COLUMNS, STATUS_COLUMNS
from tests.api.conftest import Api
from tests.conftest import CliRunner

KNOWN = "2099-01-01T00:00:00Z"  # after every seed was recorded: the whole record
KUNDUZ_CAPTURE = {
    "controller": "Taliban",
    "status": "held",
    "since": "2015-09-28",
    "event_id": "kunduz-3",
    "source_name": "dawn.com",
    "source_url": "https://www.dawn.com/news/1209540",
}


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def gdal(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{tool} (gdal-bin) is missing: .ci/run installs it")
        pytest.skip(f"{tool} (gdal-bin) is not installed")
    return found


def test_status_csv(seeded: Api) -> None:
    response = seeded.get("/status.csv", params={"as_of": "2015-09-29"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.count(b"\r\n") == 33  # RFC 4180: CRLF after every record
    rows = rows_of(response.content.decode("utf-8"))
    assert tuple(rows[0]) == STATUS_COLUMNS
    assert len(rows) == 32
    kunduz = next(r for r in rows if r["city"] == "kunduz")
    assert {k: kunduz[k] for k in KUNDUZ_CAPTURE} == KUNDUZ_CAPTURE
    assert (float(kunduz["lat"]), float(kunduz["lon"])) == (36.7286, 68.8681)
    assert kunduz["population"] == "374000" and kunduz["contested_by"] == ""
    # the same rows as the JSON answer, cell for cell
    as_json = seeded.get("/status", params={"as_of": "2015-09-29"}).json()
    assert [r["city"] for r in rows] == [r["city"] for r in as_json]
    assert [r["controller"] for r in rows] == [r["controller"] or "" for r in as_json]


def test_changes_csv(seeded: Api) -> None:
    params = {"from": "2021-08-06", "to": "2021-08-15", "known_at": KNOWN}
    response = seeded.get("/changes.csv", params=params)
    assert response.status_code == 200
    rows = rows_of(response.text)
    assert tuple(rows[0]) == CHANGES_COLUMNS
    listed = seeded.get("/changes", params=params).json()
    assert [r["event_id"] for r in rows] == [e["id"] for e in listed]
    kunduz = next(r for r in rows if r["event_id"] == "kunduz-10")
    assert kunduz["occurred_on"] == "2021-08-08" and kunduz["type"] == "Captured"
    assert kunduz["source_name"] == "moneycontrol.com"
    assert kunduz["name"] == "Kunduz" and float(kunduz["lat"]) == 36.7286


def test_changes_csv_bad_range_is_422(seeded: Api) -> None:
    response = seeded.get("/changes.csv", params={"from": "2021-08-15", "to": "2021-08-06"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "to"


def test_csv_quotes_commas_newlines_and_unicode(api: Api) -> None:
    api.register("mazar", name="Mazār-i-Sharīf", province='Balkh, "north"')
    quote = 'He said: "the city, at last, is ours"\nthen left'
    report = api.report(
        "mazar", "Captured", "2021-08-14", "Taliban", source={"name": "Pajhwok", "quote": quote}
    )
    assert report.status_code == 201
    status = rows_of(api.get("/status.csv").content.decode("utf-8"))
    assert status[0]["name"] == "Mazār-i-Sharīf"
    assert status[0]["province"] == 'Balkh, "north"'
    assert status[0]["source_name"] == "Pajhwok" and status[0]["source_url"] == ""
    changes = rows_of(api.get("/changes.csv", params={"from": "2021-01-01"}).text)
    assert changes[0]["source_quote"] == quote


def test_retracted_changes_carry_the_reason(api: Api) -> None:
    api.register("testville")
    event = api.report("testville", "Contested", "2020-05-01", "Taliban").json()
    retraction = api.post(
        f"/cities/testville/events/{event['id']}/retraction", "editor", json={"reason": "rumour"}
    )
    assert retraction.status_code == 201
    params = {"from": "2020-01-01", "include_retracted": "true"}
    rows = rows_of(api.get("/changes.csv", params=params).text)
    assert rows[0]["retraction_reason"] == "rumour"
    assert rows[0]["retracted_by"] == "editor-token"
    assert rows_of(api.get("/changes.csv", params={"from": "2020-01-01"}).text) == []


def test_status_json_has_coordinates(seeded: Api) -> None:
    kunduz = next(r for r in seeded.get("/status").json() if r["city"] == "kunduz")
    assert (kunduz["lat"], kunduz["lon"], kunduz["population"]) == (36.7286, 68.8681, 374000)


def test_geojson_is_valid_and_says_who_says_so(seeded: Api) -> None:
    response = seeded.get("/status", params={"as_of": "2015-09-29", "format": "geojson"})
    collection = FeatureCollection.model_validate(response.json())
    assert len(collection.features) == 32
    kunduz = next(f for f in collection.features if f.id == "kunduz")
    properties: dict[str, Any] = dict(kunduz.properties or {})
    assert {k: properties[k] for k in KUNDUZ_CAPTURE} == KUNDUZ_CAPTURE
    assert properties["population"] == 374000
    untouched = next(f for f in collection.features if f.id == "bamyan")
    assert (untouched.properties or {})["source_name"] is None


def test_gdal_reads_the_csv_as_points_and_the_geojson(seeded: Api, tmp_path: Path) -> None:
    ogr2ogr, ogrinfo = gdal("ogr2ogr"), gdal("ogrinfo")
    source = tmp_path / "status.csv"
    source.write_bytes(seeded.get("/status.csv", params={"as_of": "2015-09-29"}).content)
    converted = tmp_path / "points.geojson"
    subprocess.run(
        [
            ogr2ogr,
            "-f",
            "GeoJSON",
            str(converted),
            str(source),
            "-oo",
            "X_POSSIBLE_NAMES=lon",
            "-oo",
            "Y_POSSIBLE_NAMES=lat",
            "-oo",
            "AUTODETECT_TYPE=YES",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    features = json.loads(converted.read_text())["features"]
    assert len(features) == 32
    kunduz = next(f for f in features if f["properties"]["city"] == "kunduz")
    assert kunduz["geometry"]["coordinates"] == [68.8681, 36.7286]
    assert kunduz["properties"]["controller"] == "Taliban"
    geojson = tmp_path / "status.geojson"
    geojson.write_bytes(seeded.get("/status", params={"format": "geojson"}).content)
    info = subprocess.run(
        [ogrinfo, "-ro", "-al", "-so", str(geojson)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "Feature Count: 32" in info and "Point" in info


def test_dateline_export_on_the_command_line(cli: CliRunner) -> None:
    code, text = cli("export", "status", "--as-of", "2015-09-29", "--csv")
    assert code == 0
    rows = rows_of(text)
    assert tuple(rows[0]) == STATUS_COLUMNS and len(rows) == 32
    kunduz = next(r for r in rows if r["city"] == "kunduz")
    assert {k: kunduz[k] for k in KUNDUZ_CAPTURE} == KUNDUZ_CAPTURE
    code, text = cli("export", "changes", "--from", "2021-08-06", "--to", "2021-08-15", "--json")
    assert code == 0
    events = json.loads(text)
    assert "kunduz-10" in [e["event_id"] for e in events]
    assert cli("export", "changes", "--from", "2021-08-15", "--to", "2021-08-06")[0] == 1
