"""The HTTP figures: a real `dateline serve` process and `bench.loadgen` against it."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.figures import Figure, judge_at_least, judge_at_most
from bench.inprocess import Writer, make_writers, status_samples
from bench.synth import LogBuilder
from dateline.infrastructure.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


class ServerError(RuntimeError):
    pass


def api_missing() -> str | None:
    """Why the HTTP figures cannot run, or None."""
    for module in ("dateline.api.app", "dateline.api.cli.serve", "dateline.api.cli.tokens"):
        if importlib.util.find_spec(module) is None:
            return f"{module} has not landed"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(settings: Settings, extra_path: Sequence[Path] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
    env |= {
        "DATELINE_DATABASE_URL": settings.database_url or "",
        "DATELINE_POSTGRES_SCHEMA": settings.postgres_schema,
        "DATELINE_PUBLIC_READS": "true",
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, *extra_path)),
    }
    return env


def serve_command(port: int) -> list[str]:
    """What the docs tell an operator to run: `dateline serve`."""
    return [
        sys.executable,
        "-m",
        "dateline.api.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def cli(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dateline.api.cli", *args],
        env=server_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def create_token(settings: Settings) -> str:
    """A reporter token from `dateline tokens create` (`--json` on the action, or
    on `tokens` in older command lines)."""
    name = f"bench-{uuid.uuid4().hex[:6]}"
    action = ["create", "--name", name, "--role", "reporter"]
    done = cli(settings, "tokens", *action, "--json")
    if done.returncode == 2:  # a usage error: the older placement of --json
        done = cli(settings, "tokens", "--json", *action)
    if done.returncode != 0:
        raise ServerError(f"dateline tokens create failed: {done.stderr.strip()[-300:]}")
    return str(json.loads(done.stdout)["token"])


@contextmanager
def server(
    settings: Settings,
    log_dir: Path,
    command: Callable[[int], list[str]] = serve_command,
    extra_path: Sequence[Path] = (),
) -> Iterator[str]:
    """`dateline serve` (or `command(port)`) on a free loopback port; yields its base URL."""
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command(port),
            env=server_env(settings, extra_path),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, log_path)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_healthy(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    import http.client

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"dateline serve exited: {log_path.read_text()[-500:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise ServerError(f"dateline serve not healthy after 120 s: {log_path.read_text()[-500:]}")


def loadgen(job: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=float(job["seconds"]) + 180,
        check=False,
    )
    if done.returncode != 0:
        raise ServerError(f"bench.loadgen failed: {done.stderr.strip()[-500:]}")
    return dict(json.loads(done.stdout))


def status_paths(builder: LogBuilder, n: int, seed: int = 13) -> list[str]:
    return [
        f"/cities/{slug}/status?as_of={as_of.isoformat()}&known_at={quote(known_at.isoformat())}"
        for slug, as_of, known_at in status_samples(builder, n, seed)
    ]


def writer_payload(team: list[Writer]) -> list[list[dict[str, Any]]]:
    """Each writer's cities with their latest state, for bench.loadgen."""
    return [
        [
            {
                "slug": p.slug,
                "actors": p.actors,
                "status": p.frontier.status.value,
                "controller": p.frontier.controller,
                "contested_by": p.frontier.contested_by,
                "holders": sorted(p.frontier.holders),
            }
            for p in w.plans
            if p.frontier is not None
        ]
        for w in team
    ]


def http_figures(
    settings: Settings, builder: LogBuilder, threads: int, seconds: float, samples: int
) -> list[Figure]:
    append, status = Figure.of("append_http"), Figure.of("status_http")
    missing = api_missing()
    if missing:
        return [
            Figure.not_measured("append_http", missing),
            Figure.not_measured("status_http", missing),
        ]
    with tempfile.TemporaryDirectory(prefix="dateline-bench-") as tmp:
        try:
            token = create_token(settings)
            with server(settings, Path(tmp)) as base:
                paths = status_paths(builder, max(samples, 2000))
                job = {"base": base, "threads": threads, "max_requests": 1_000_000}
                loadgen({**job, "mode": "status", "paths": paths, "seconds": min(2.0, seconds)})
                reads = loadgen({**job, "mode": "status", "paths": paths, "seconds": seconds})
                writers = writer_payload(make_writers(builder, threads, 8, 33, hand_off=True))
                writes = loadgen(
                    {
                        **job,
                        "mode": "append",
                        "writers": writers,
                        "token": token,
                        "seconds": seconds,
                    }
                )
        except (ServerError, subprocess.TimeoutExpired, OSError, ValueError) as error:
            reason = str(error).splitlines()[0][:300]
            return [
                Figure.not_measured("append_http", reason),
                Figure.not_measured("status_http", reason),
            ]

    status.unit = "ms, requests/s"
    status.value = {
        "requests_per_s": reads["ok_per_s"],
        "p50_ms": reads["latency"]["p50_ms"],
        "p99_ms": reads["latency"]["p99_ms"],
    }
    status.details = reads
    judge_at_most(status, reads["latency"]["p99_ms"], 10.0, "p99 ms")
    judge_at_least(status, reads["ok_per_s"] or 0.0, 1000.0, "requests/s")
    append.unit = "ms, events/s"
    append.value = {
        "events_per_s": writes["ok_per_s"],
        "p50_ms": writes["latency"]["p50_ms"],
        "p99_ms": writes["latency"]["p99_ms"],
    }
    append.details = writes
    judge_at_most(append, writes["latency"]["p99_ms"], 50.0, "p99 ms")
    judge_at_least(append, writes["ok_per_s"] or 0.0, 500.0, "events/s")
    if reads["ok"] < reads["requests"] or writes["ok"] < writes["requests"]:
        note = f"non-2xx answers: reads {reads['codes']}, writes {writes['codes']}"
        append.details["warning"] = status.details["warning"] = note
    return [append, status]
