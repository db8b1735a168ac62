"""kill -9 of a serving process under 16 concurrent writers, then a restart.

Every acknowledged event must still be in the log, none twice; every request
that got no answer, repeated with its report_id, lands exactly once; and the
read model equals the aggregate fold (`dateline projections check`).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from dateline.infrastructure.settings import Settings
from dateline.infrastructure.tokens import TokenStore
from tests.api.conftest import bearer, city_body
from tests.api.servers import clean_env, free_port, run, serve, stop
from tests.conftest import POSTGRES_URL, STORES, drop_schema, require_postgres

WRITERS = 16


def report(i: int, slug: str) -> dict[str, Any]:
    return {
        "type": "Contested",
        "occurred_on": f"2021-{1 + i // 28:02d}-{1 + i % 28:02d}",
        "actor": f"Faction {i}",
        "source": {"name": "Wire"},
        "report_id": f"{slug}-{i}",
    }


@pytest.mark.parametrize("kind", STORES)
def test_kill_9_under_sixteen_writers_loses_and_duplicates_nothing(
    kind: str, tmp_path: Path
) -> None:
    env = clean_env()
    schema = None
    if kind == "sqlite":
        env["DATELINE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'crash.sqlite'}"
    else:
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        env |= {"DATELINE_DATABASE_URL": POSTGRES_URL, "DATELINE_POSTGRES_SCHEMA": schema}
    process = None
    try:
        assert run(env, "migrate").returncode == 0
        settings = Settings(
            database_url=env["DATELINE_DATABASE_URL"], postgres_schema=schema or "dateline"
        )
        tokens = TokenStore(settings.store())
        try:
            editor = tokens.create("editor", "editor").secret
            reporter = tokens.create("reporter", "reporter").secret
        finally:
            tokens.close()
        port, log = free_port(), tmp_path / "server.log"
        url = f"http://127.0.0.1:{port}"
        process = serve(env, port, log, "--workers", "1")  # kill -9 hits the one server
        slugs = [f"front-{n:02d}" for n in range(WRITERS)]
        with httpx.Client(base_url=url, timeout=30) as client:
            for slug in slugs:
                body = city_body(slug, tracked_since="2020-01-01")
                assert client.post("/cities", json=body, headers=bearer(editor)).status_code == 201

        acked: dict[str, str] = {}  # report_id -> event id
        unanswered: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()
        killed = threading.Event()

        def write(slug: str) -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                for i in range(400):
                    body = report(i, slug)
                    try:
                        response = client.post(
                            f"/cities/{slug}/events", json=body, headers=bearer(reporter)
                        )
                    except httpx.TransportError:
                        with lock:
                            unanswered.append((slug, body))
                        return
                    with lock:
                        if response.status_code in (200, 201):
                            acked[body["report_id"]] = response.json()["id"]
                        else:
                            unanswered.append((slug, body))
                    if killed.is_set():
                        return

        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            futures = [pool.submit(write, slug) for slug in slugs]
            deadline = time.monotonic() + 30
            while len(acked) < 150 and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
            killed.set()
            process.wait(timeout=10)
            for future in futures:
                future.result()
        print(f"\n[{kind}] killed with {len(acked)} acknowledged, {len(unanswered)} unanswered")
        assert len(acked) >= 100

        process = serve(env, port, log, "--workers", "1")  # restart: catches up whatever it must
        with httpx.Client(base_url=url, timeout=30) as client:
            repeated = Counter()
            for slug, body in unanswered:
                response = client.post(
                    f"/cities/{slug}/events", json=body, headers=bearer(reporter)
                )
                repeated[response.status_code] += 1
                assert response.status_code in (200, 201), response.text
                acked[body["report_id"]] = response.json()["id"]
            print(f"[{kind}] repeats of the unanswered: {dict(repeated)}")
            stored: dict[str, str] = {}
            for slug in slugs:
                for event in client.get(f"/cities/{slug}/events").json()[1:]:
                    assert event["report_id"] not in stored, "a report stored twice"
                    stored[event["report_id"]] = event["id"]
        assert stored == acked  # nothing lost, nothing duplicated, same ids
        stop(process)
        process = None
        checked = run(env, "projections", "check", "--json", "--samples", "50")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert json.loads(checked.stdout)["differences"] == []
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        stop(process)
        if schema is not None:
            drop_schema(schema)
