"""PostgreSQL side of the benchmark: the schema, machine facts and the raw baselines.

Every baseline writes or reads the same bytes as the application, in tables
with the same columns, keys and indexes as the application's (migration 0001),
in the same schema and the same run.
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import threading
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

RAW_EVENTS = "bench_raw_events"
RAW_INDEX = "bench_raw_index"
EVENT_COLUMNS = "originator_id, originator_version, topic, state"
INDEX_COLUMNS = "city_id, version, slug, event_type, recorded_at, occurred_on, report_id"
RAW_DDL = [
    f"""CREATE TABLE {{s}}.{RAW_EVENTS} (
        originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text,
        state bytea, notification_id bigserial,
        PRIMARY KEY (originator_id, originator_version))""",
    f"CREATE UNIQUE INDEX {RAW_EVENTS}_nid ON {{s}}.{RAW_EVENTS} (notification_id ASC)",
    f"""CREATE TABLE {{s}}.{RAW_INDEX} (
        city_id uuid NOT NULL, version bigint NOT NULL, slug text NOT NULL,
        event_type text NOT NULL, recorded_at timestamptz NOT NULL, occurred_on date,
        report_id text, PRIMARY KEY (city_id, version))""",
    f"""CREATE UNIQUE INDEX {RAW_INDEX}_report_id ON {{s}}.{RAW_INDEX} (city_id, report_id)
        WHERE report_id IS NOT NULL""",
    f"CREATE INDEX {RAW_INDEX}_recorded_at ON {{s}}.{RAW_INDEX} (city_id, recorded_at)",
]
PACKAGES = (
    "eventsourcing",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "pydantic",
)


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, **kwargs)


def drop_schema(url: str, schema: str) -> None:
    with connect(url) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def create_raw_tables(url: str, schema: str) -> None:
    with connect(url) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for statement in RAW_DDL:
            conn.execute(statement.format(s=f'"{schema}"'))


def truncate_raw(url: str, schema: str) -> None:
    with connect(url) as conn:
        conn.execute(f'TRUNCATE "{schema}".{RAW_EVENTS}, "{schema}".{RAW_INDEX}')


def machine_facts(url: str) -> dict[str, Any]:
    with connect(url) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in (
                "server_version",
                "synchronous_commit",
                "fsync",
                "shared_buffers",
                "max_connections",
                "wal_level",
                "max_wal_size",
            )
        }
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "psycopg_impl": psycopg.pq.__impl__,
        "libpq": psycopg.pq.version(),
        "postgres": settings,
        "packages": versions,
        "git_commit": _git_commit(),
        "git_uncommitted": _git_uncommitted(),
        "postgres_host": "shares the machine (loopback TCP)",
    }


def _git_uncommitted() -> list[str] | None:
    """Files measured as they stand in the work tree, not as committed."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", ".", ":!bench"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return [line[3:] for line in out.stdout.splitlines() if line.endswith(".py")]


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# ------------------------------------------------------------------ baselines
def sample_event(url: str, schema: str) -> tuple[str, bytes]:
    """A typical control event as stored by the application: (topic, state)."""
    with connect(url) as conn:
        row = conn.execute(
            f'SELECT topic, state FROM "{schema}".dateline_events '
            "WHERE topic LIKE %s ORDER BY notification_id DESC LIMIT 1",
            ("%Contested",),
        ).fetchone()
    assert row is not None, "the log has no Contested event to copy"
    return str(row[0]), bytes(row[1])


def raw_insert_writers(
    url: str, schema: str, topic: str, state: bytes, writers: int, seconds: float
) -> tuple[int, float, list[float]]:
    """`writers` connections, each INSERTing one row per autocommit transaction
    for `seconds`: (rows, elapsed, per-row latencies)."""
    sql = (
        f'INSERT INTO "{schema}".{RAW_EVENTS} ({EVENT_COLUMNS}) VALUES (%s, %s, %s, %s) '
        "RETURNING notification_id"
    )
    latencies: list[list[float]] = [[] for _ in range(writers)]
    connections = [connect(url) for _ in range(writers)]
    barrier = threading.Barrier(writers + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        conn, own = connections[i], latencies[i]
        originator = uuid.uuid4()
        version = 0
        barrier.wait()
        while True:
            start = time.perf_counter()
            if start >= deadline[0]:
                return
            version += 1
            conn.execute(sql, (originator, version, topic, state)).fetchone()
            own.append(time.perf_counter() - start)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for conn in connections:
        conn.close()
    flat = [x for own in latencies for x in own]
    return len(flat), elapsed, flat


def dump_log(url: str, schema: str) -> tuple[bytes, bytes, int]:
    """The application's event rows and index rows, as binary COPY data."""
    with connect(url) as conn, conn.cursor() as cur:
        events = io.BytesIO()
        with cur.copy(
            f'COPY (SELECT {EVENT_COLUMNS} FROM "{schema}".dateline_events '
            "ORDER BY notification_id) TO STDOUT (FORMAT binary)"
        ) as copy:
            for chunk in copy:
                events.write(chunk)
        index = io.BytesIO()
        with cur.copy(
            f'COPY (SELECT {INDEX_COLUMNS} FROM "{schema}".dateline_event_index) '
            "TO STDOUT (FORMAT binary)"
        ) as copy:
            for chunk in copy:
                index.write(chunk)
        count = conn.execute(f'SELECT count(*) FROM "{schema}".dateline_events').fetchone()
    return events.getvalue(), index.getvalue(), int(count[0]) if count else 0


def copy_in(url: str, schema: str, events: bytes, index: bytes) -> dict[str, float]:
    """COPY the dumped rows into the equivalent tables; seconds for each, committed."""
    truncate_raw(url, schema)
    chunk = 1 << 20
    out: dict[str, float] = {}
    with connect(url) as conn:
        for name, table, columns, data in (
            ("events_s", RAW_EVENTS, EVENT_COLUMNS, events),
            ("index_s", RAW_INDEX, INDEX_COLUMNS, index),
        ):
            start = time.perf_counter()
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f'COPY "{schema}".{table} ({columns}) FROM STDIN (FORMAT binary)') as copy,
            ):
                for offset in range(0, len(data), chunk):
                    copy.write(data[offset : offset + chunk])
            out[name] = time.perf_counter() - start
    return out


def raw_read(url: str, schema: str, page: int) -> tuple[int, float]:
    """Read every event row in notification order, `page` rows per query
    (keyset pagination, as a projection catching up does): (rows, seconds)."""
    sql = (
        f'SELECT notification_id, {EVENT_COLUMNS} FROM "{schema}".dateline_events '
        "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
    )
    rows = 0
    with connect(url) as conn, conn.cursor() as cur:
        start = time.perf_counter()
        position = 0
        while True:
            batch = cur.execute(sql, (position, page)).fetchall()
            rows += len(batch)
            if len(batch) < page:
                break
            position = batch[-1][0]
        return rows, time.perf_counter() - start


def raw_stream(url: str, schema: str) -> tuple[int, float]:
    """Read every event row in one server-side cursor: (rows, seconds)."""
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor(name="bench_stream") as cur:
        cur.itersize = 5000
        start = time.perf_counter()
        cur.execute(
            f'SELECT notification_id, {EVENT_COLUMNS} FROM "{schema}".dateline_events '
            "ORDER BY notification_id"
        )
        while batch := cur.fetchmany(5000):
            rows += len(batch)
        return rows, time.perf_counter() - start
