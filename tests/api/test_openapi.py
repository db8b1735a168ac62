"""The OpenAPI document at /docs: every endpoint, with examples from the Kunduz seeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dateline.api.app import create_app
from dateline.infrastructure.settings import Settings
from tests.api.conftest import TestClient

ENDPOINTS = {
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/cities"),
    ("post", "/cities"),
    ("get", "/cities/{slug}"),
    ("get", "/cities/{slug}/status"),
    ("get", "/cities/{slug}/timeline"),
    ("get", "/cities/{slug}/events"),
    ("post", "/cities/{slug}/events"),
    ("get", "/cities/{slug}/events/{event_id}"),
    ("post", "/cities/{slug}/events/{event_id}/retraction"),
    ("get", "/status"),
    ("get", "/changes"),
    ("get", "/status.csv"),
    ("get", "/changes.csv"),
    ("get", "/audit/checkpoint"),
    ("get", "/cities/{slug}/audit"),
    ("get", "/cities/{slug}/audit/diff"),
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path: Path = tmp_path_factory.mktemp("openapi") / "unused.sqlite"
    client = TestClient(create_app(Settings(database_url=f"sqlite:///{path}")))
    docs = client.get("/docs")  # no lifespan: the document needs no store
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def resolve(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    found: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return found


def test_every_endpoint_is_documented(schema: dict[str, Any]) -> None:
    documented = {(method, path) for path, ops in schema["paths"].items() for method in ops}
    assert documented == ENDPOINTS
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), (method, path)


def test_every_body_and_answer_has_a_kunduz_example(schema: dict[str, Any]) -> None:
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody")
            if body:
                ref = body["content"]["application/json"]["schema"]["$ref"]
                examples = resolve(schema, ref)["examples"]
                assert "kunduz" in json.dumps(examples).lower(), (method, path)
            if path in ("/health", "/metrics", "/audit/checkpoint"):
                continue  # counts, Prometheus text, the whole log's checkpoint: no city
            ok = op["responses"].get("200") or op["responses"].get("201")
            if "text/csv" in ok["content"]:
                assert "kunduz" in ok["content"]["text/csv"]["example"], (method, path)
                continue
            target = ok["content"]["application/json"]["schema"]
            ref = target.get("$ref") or target["items"]["$ref"]
            assert "kunduz" in json.dumps(resolve(schema, ref)["examples"]).lower(), (method, path)


def test_parameters_have_examples(schema: dict[str, Any]) -> None:
    status = schema["paths"]["/cities/{slug}/status"]["get"]
    params = {p["name"]: p for p in status["parameters"]}
    assert params["slug"]["examples"]["kunduz"]["value"] == "kunduz"
    assert params["as_of"]["examples"]["kunduz"]["value"] == "2015-09-28"
    assert params["known_at"]["examples"]["kunduz"]["value"].endswith("Z")
    changes = {p["name"] for p in schema["paths"]["/changes"]["get"]["parameters"]}
    assert {"from", "to", "known_at", "include_retracted"} <= changes


def test_geojson_and_security_are_documented(schema: dict[str, Any]) -> None:
    content = schema["paths"]["/status"]["get"]["responses"]["200"]["content"]
    assert content["application/geo+json"]["schema"]["$ref"].endswith("StatusFeatureCollection")
    assert "StatusFeatureCollection" in schema["components"]["schemas"]
    assert "kunduz" in json.dumps(content["application/geo+json"]["example"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    report = schema["paths"]["/cities/{slug}/events"]["post"]
    assert {"401", "403", "404", "409", "412", "413", "422"} <= set(report["responses"])
    headers = {p["name"] for p in report["parameters"] if p["in"] == "header"}
    assert {"if-match", "idempotency-key"} <= {h.lower() for h in headers}
