"""`dateline serve` as a real process: startup, seeds, and concurrent appends to one city.

Per store kind: `dateline migrate`, tokens, then `dateline serve --seed` on a free
127.0.0.1 port. Concurrent POSTs come from threads over real sockets.
"""

from __future__ import annotations

import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dateline.infrastructure.settings import Settings
from dateline.infrastructure.tokens import TokenStore
from tests.api.conftest import bearer, city_body
from tests.api.servers import clean_env, free_port, run, serve, stop
from tests.conftest import POSTGRES_URL, STORES, drop_schema, require_postgres


@dataclass
class Server:
    kind: str
    url: str
    log: Path
    editor: str
    reporter: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=60,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )


@pytest.fixture(scope="module", params=STORES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    kind = str(request.param)
    tmp = tmp_path_factory.mktemp(f"server-{kind}")
    env = clean_env()
    schema = None
    if kind == "sqlite":
        env["DATELINE_DATABASE_URL"] = f"sqlite:///{tmp / 'served.sqlite'}"
    else:
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        env["DATELINE_DATABASE_URL"] = POSTGRES_URL
        env["DATELINE_POSTGRES_SCHEMA"] = schema
    process: subprocess.Popen[bytes] | None = None
    try:
        migrated = run(env, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        settings = Settings(
            database_url=env["DATELINE_DATABASE_URL"], postgres_schema=schema or "dateline"
        )
        tokens = TokenStore(settings.store())
        try:
            editor = tokens.create("desk-editor", "editor").secret
            reporter = tokens.create("field-reporter", "reporter").secret
        finally:
            tokens.close()

        port = free_port()
        log = tmp / "server.log"
        process = serve(env, port, log, "--seed")
        url = f"http://127.0.0.1:{port}"
        yield Server(kind, url, log, editor, reporter)
    finally:
        stop(process)
        if schema is not None:
            drop_schema(schema)


def test_serve_prints_how_to_start_and_serves_the_seeds(server: Server) -> None:
    startup = server.log.read_text()
    assert f"Dateline API on {server.url}" in startup
    assert "dateline tokens create --name you --role reporter" in startup
    assert "seeded: 32 cities registered" in startup
    with server.client() as client:
        health = client.get("/health").json()
        assert (health["status"], health["store"]) == ("ok", server.kind)
        assert health["events"] >= 89
        status = client.get("/cities/kunduz/status", params={"as_of": "2015-09-28"}).json()
        assert (status["status"], status["controller"]) == ("held", "Taliban")
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()


def post_event(
    client: httpx.Client, server: Server, slug: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return client.post(
        f"/cities/{slug}/events", json=body, headers={**bearer(server.reporter), **headers}
    )


def contest(i: int) -> dict[str, Any]:
    """Contested by a faction of its own on a day of its own: valid in any order."""
    return {
        "type": "Contested",
        "occurred_on": (date(2021, 1, 1) + timedelta(days=i)).isoformat(),
        "actor": f"Faction {i:02d}",
        "source": {"name": "Wire", "url": f"https://example.org/{i}"},
        "report_id": f"hot-{i:02d}",
    }


def test_fifty_concurrent_appends_to_one_city(server: Server) -> None:
    slug = "hotspot"
    with server.client() as client:
        body = city_body(slug, tracked_since="2020-01-01")
        registered = client.post("/cities", json=body, headers=bearer(server.editor))
        assert registered.status_code == 201, registered.text

        # 50 distinct reports, and 10 of them sent a second time, all at once.
        requests = [contest(i) for i in range(50)] + [contest(i) for i in range(10)]
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            responses = list(pool.map(lambda b: post_event(client, server, slug, b), requests))

        codes = Counter(r.status_code for r in responses)
        print(f"\n[{server.kind}] 60 concurrent POSTs (50 distinct + 10 repeats): {dict(codes)}")
        assert set(codes) <= {200, 201, 409, 412}, [
            r.text for r in responses if r.status_code >= 500
        ]
        for response in responses:
            if response.status_code in (409, 412):
                assert response.json()["detail"]
        created = Counter(r.json()["report_id"] for r in responses if r.status_code == 201)
        repeated = [r.json()["report_id"] for r in responses if r.status_code == 200]
        assert all(n == 1 for n in created.values()), created  # none created twice
        assert set(repeated) <= set(created)  # a repeat answers with a stored original
        assert len(created) == 50 and codes[201] == 50 and codes[200] == 10

        log = client.get(f"/cities/{slug}/events").json()
        stored = Counter(e["report_id"] for e in log if e["type"] == "Contested")
        assert stored == Counter({report_id: 1 for report_id in created})
        assert [e["version"] for e in log] == list(range(1, 52))
        assert {e["reported_by"] for e in log[1:]} == {"field-reporter"}
        print(f"[{server.kind}] events counted afterwards: {len(log) - 1} reports + registration")


def test_concurrent_appends_on_one_if_match_one_wins(server: Server) -> None:
    slug = "contested-ground"
    with server.client() as client:
        body = city_body(slug, tracked_since="2020-01-01")
        registered = client.post("/cities", json=body, headers=bearer(server.editor))
        etag = registered.headers["etag"]
        requests = [{**contest(i), "report_id": f"race-{i}"} for i in range(20)]
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            responses = list(
                pool.map(
                    lambda b: post_event(client, server, slug, b, **{"If-Match": etag}), requests
                )
            )
        codes = Counter(r.status_code for r in responses)
        print(f"\n[{server.kind}] 20 concurrent POSTs with If-Match {etag}: {dict(codes)}")
        assert codes == Counter({201: 1, 412: 19})
        assert all(r.headers["etag"] == '"2"' for r in responses)
        assert len(client.get(f"/cities/{slug}/events").json()) == 2


def test_sixteen_reporters_on_their_own_cities_are_all_answered(server: Server) -> None:
    """16 concurrent reporters, 12 reports each on a city of their own: every one
    acknowledged (no 503, no "database is locked" on the embedded default), and
    each city's log holds each report exactly once."""
    reporters, per_reporter = 16, 12
    slugs = [f"desk-{n:02d}" for n in range(reporters)]
    with server.client() as client:
        for slug in slugs:
            body = city_body(slug, tracked_since="2020-01-01")
            assert (
                client.post("/cities", json=body, headers=bearer(server.editor)).status_code == 201
            )

        def file_reports(n: int) -> list[int]:
            codes = []
            for i in range(per_reporter):
                body = {**contest(i), "report_id": f"{slugs[n]}-{i}"}
                codes.append(post_event(client, server, slugs[n], body).status_code)
            return codes

        with ThreadPoolExecutor(max_workers=reporters) as pool:
            codes = Counter(
                code for result in pool.map(file_reports, range(reporters)) for code in result
            )
        print(f"\n[{server.kind}] {reporters} reporters x {per_reporter}: {dict(codes)}")
        assert codes == Counter({201: reporters * per_reporter})
        for slug in slugs:
            log = client.get(f"/cities/{slug}/events").json()
            assert [e["report_id"] for e in log[1:]] == [f"{slug}-{i}" for i in range(per_reporter)]
