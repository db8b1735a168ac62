"""`dateline serve` as a real process: startup, seeds, and concurrent appends to one city.

Per store kind: `dateline migrate`, tokens, then `dateline serve --seed` on a free
127.0.0.1 port. Concurrent POSTs come from threads over real sockets.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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

from infrastructure.settings import Settings
from infrastructure.tokens import TokenStore
from tests.api.conftest import bearer, city_body
from tests.conftest import POSTGRES_URL, STORES, drop_schema, require_postgres

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dateline(*args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", *args]


@pytest.fixture(scope="module", params=STORES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    kind = str(request.param)
    tmp = tmp_path_factory.mktemp(f"server-{kind}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
    env["PYTHONUNBUFFERED"] = "1"
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
        migrated = subprocess.run(
            dateline("migrate"), env=env, cwd=ROOT, capture_output=True, timeout=120
        )
        assert migrated.returncode == 0, migrated.stderr.decode()
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
        with open(log, "wb") as output:
            process = subprocess.Popen(
                dateline("serve", "--host", "127.0.0.1", "--port", str(port), "--seed"),
                env=env,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"dateline serve exited {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dateline serve did not answer in time:\n{log.read_text()}")
            time.sleep(0.1)
        yield Server(kind, url, log, editor, reporter)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
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
