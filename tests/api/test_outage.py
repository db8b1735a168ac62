"""PostgreSQL stops under load and comes back: answers come fast, nothing is lost.

The test runs a throw-away PostgreSQL cluster of its own (initdb in a temporary
folder, its own port; as the `postgres` user when run as root, since initdb
refuses root), never the shared server. Eight reporters write while it is
stopped for a few seconds and started again. Every request must be answered
(a 503 saying nothing was written, or that repeating is safe) instead of
hanging; service must resume once the database is back; and every
acknowledged report is in the log exactly once, as is every unacknowledged one
once repeated.

Timings are recorded and printed. What is asserted about them is loose enough
for a loaded 2-core machine yet fails on the old behaviour (30 s per request
during an outage): the median answer during the outage within 3 s, none over 10 s.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dateline.infrastructure.settings import Settings
from dateline.infrastructure.tokens import TokenStore
from tests.api.conftest import bearer, city_body
from tests.api.servers import clean_env, free_port, run, serve, stop

WRITERS = 8
OUTAGE_SECONDS = 5


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary folder, on its own port."""

    def __init__(self) -> None:
        versions = sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2])
        )
        if not versions:
            pytest.fail("no PostgreSQL server binaries (postgresql package) on this machine")
        self.bin = Path(versions[-1])
        self.root = Path(tempfile.mkdtemp(prefix="dateline-outage-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{tool} failed: {done.stdout}\n{done.stderr}"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(AssertionError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[ThrowawayCluster]:
    made = ThrowawayCluster()
    made.start()
    try:
        yield made
    finally:
        made.remove()


@dataclass
class Outcome:
    slug: str
    body: dict[str, Any]
    sent: float
    answered: float
    status: int | None  # None: no answer (connection refused, reset)
    detail: str = ""


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)


def test_an_outage_is_answered_fast_and_loses_nothing(
    cluster: ThrowawayCluster, tmp_path: Path
) -> None:
    env = clean_env(
        DATELINE_DATABASE_URL=cluster.url,
        DATELINE_POSTGRES_SCHEMA="dateline",
        DATELINE_POSTGRES_CONNECT_TIMEOUT="2",
    )
    assert run(env, "migrate").returncode == 0
    tokens = TokenStore(Settings(database_url=cluster.url).store())
    try:
        editor = tokens.create("editor", "editor").secret
        reporter = tokens.create("reporter", "reporter").secret
    finally:
        tokens.close()
    port, log = free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    process = serve(env, port, log)
    try:
        slugs = [f"post-{n}" for n in range(WRITERS)]
        with httpx.Client(base_url=url, timeout=60) as client:
            for slug in slugs:
                body = city_body(slug, tracked_since="2020-01-01")
                assert client.post("/cities", json=body, headers=bearer(editor)).status_code == 201
        load = Load()

        def write(slug: str) -> None:
            with httpx.Client(base_url=url, timeout=60) as client:
                for i in range(100_000):
                    if load.done.is_set():
                        return
                    body = {
                        "type": "Contested",
                        "occurred_on": f"2021-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}",
                        "actor": f"Faction {i}",
                        "source": {"name": "Wire"},
                        "report_id": f"{slug}-{i}",
                    }
                    sent = time.monotonic()
                    try:
                        response = client.post(
                            f"/cities/{slug}/events", json=body, headers=bearer(reporter)
                        )
                        status, detail = response.status_code, response.text
                    except httpx.TransportError as error:
                        status, detail = None, str(error)
                    with load.lock:
                        load.outcomes.append(
                            Outcome(slug, body, sent, time.monotonic(), status, detail)
                        )
                    if status == 503:
                        time.sleep(0.2)

        writers = [threading.Thread(target=write, args=(slug,)) for slug in slugs]
        for writer in writers:
            writer.start()
        time.sleep(2)
        down = time.monotonic()
        cluster.stop()
        stopped = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        health_during = []
        for _ in range(3):
            sent = time.monotonic()
            answer = httpx.get(f"{url}/health", timeout=60)
            health_during.append((answer.status_code, time.monotonic() - sent))
        cluster.start()
        back = time.monotonic()
        resumed = None
        while time.monotonic() - back < 30:
            with load.lock:
                served = [o for o in load.outcomes if o.sent >= back and o.status == 201]
            if served:
                resumed = min(o.answered for o in served) - back
                break
            time.sleep(0.05)
        time.sleep(2)
        load.done.set()
        for writer in writers:
            writer.join(timeout=120)

        during = [o for o in load.outcomes if o.sent >= stopped and o.answered <= back]
        waits = [o.answered - o.sent for o in during]
        print(
            f"\noutage {back - down:.1f} s: {len(during)} requests answered during it, "
            f"wait p50 {statistics.median(waits):.2f} s, max {max(waits):.2f} s; "
            f"health during it {health_during}; first 201 {resumed} s after the database was back"
        )
        assert during, "no request was answered while the database was down"
        assert {o.status for o in during} <= {503}, {o.status for o in during}
        for outcome in during:
            assert "nothing was written" in outcome.detail or "safe" in outcome.detail, (
                outcome.detail
            )
        assert statistics.median(waits) <= 3.0 and max(waits) <= 10.0
        assert all(code == 503 and seconds <= 10.0 for code, seconds in health_during)
        assert resumed is not None and resumed <= 10.0

        # Nothing lost, nothing twice: every acknowledged report is stored once,
        # and every other one, repeated with its report_id, lands once.
        acked = {o.body["report_id"] for o in load.outcomes if o.status in (200, 201)}
        unacked = [o for o in load.outcomes if o.status not in (200, 201)]
        with httpx.Client(base_url=url, timeout=60) as client:
            for outcome in unacked:
                # A 503 says nothing was written and repeating is safe: a worker
                # process that served nothing since the database came back may
                # still be waiting for its pool's next reconnection attempt.
                for _ in range(3):
                    response = client.post(
                        f"/cities/{outcome.slug}/events",
                        json=outcome.body,
                        headers=bearer(reporter),
                    )
                    if response.status_code != 503:
                        break
                    time.sleep(1)
                assert response.status_code in (200, 201), response.text
                acked.add(outcome.body["report_id"])
            stored: list[str] = []
            for slug in slugs:
                stored += [e["report_id"] for e in client.get(f"/cities/{slug}/events").json()[1:]]
        assert sorted(stored) == sorted(acked)
    finally:
        stop(process)
