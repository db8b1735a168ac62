"""The read benchmark (issue 8): the read side at a million events, with baselines
measured in the same run, interleaved A B A B, medians of rounds.

    .venv/bin/python -m bench.reads                       # 10,000 cities, 1,000,000 events
    .venv/bin/python -m bench.reads --quick               # 300 cities, 5,000 events, 1 s loads
    .venv/bin/python -m bench.reads --cities 10000 --events 1000000 --rounds 3 \\
        --seconds 10 --clients 16 [--workers N] [--schema NAME] [--keep-schema] \\
        [--postgres-url URL] [--out FILE]

Figures (PostgreSQL):

* `status_http`: `GET /cities/{slug}/status?as_of&known_at` on `dateline serve
  --workers N` (N = CPU count) against `bench.trivial_app` (a FastAPI endpoint
  returning a constant body of the same size) under the same uvicorn settings
  and worker count; 16 keep-alive clients (`bench.loadgen_async`, its own
  process); A B, B A, ... for `--rounds`; requests/s ratio and p99 ratio per
  round, medians. Server CPU (the process tree, from /proc) and client CPU per
  request are recorded beside them.
* `city_size`: `GET /cities/{slug}` and `GET /cities/{slug}/timeline` for a
  5,000-event city against a 10-event city, one client, interleaved.
* `map_geojson`: `GET /status?format=geojson` at 10,000 cities, one client.
* `status_inprocess`: `read_model.status(slug, as_of, known_at)` at 1,000,000 events.

The store is built by `bench.reads_data.prepare` in a fresh schema (dropped at
the end unless --keep-schema); --schema reuses one built before.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench import pg
from bench.http import ROOT, free_port, server_env, wait_healthy
from bench.reads_data import BIG_SLUG, SMALL_SLUG, prepare
from bench.stats import summarize
from bench.synth import LOG_END
from bench.write_path_load import new_schema_name
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings

DEFAULT_URL = os.environ.get(
    "DATELINE_BENCH_POSTGRES_URL",
    os.environ.get("DATELINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
RESULTS_DIR = Path(__file__).parent / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None


# --------------------------------------------------------------- processes
def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (/proc)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (OSError, IndexError, ValueError):
            continue
    return total


class Server:
    def __init__(self, name: str, base: str, process: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.base = base
        self.process = process


@contextmanager
def serve(
    name: str,
    command: list[str],
    settings: Settings,
    log_dir: Path,
    env: dict[str, str],
    cwd: Path = ROOT,
) -> Iterator[Server]:
    """A server process on a free loopback port, healthy, terminated at the end;
    `cwd` (and PYTHONPATH in `env`) choose the source tree it runs."""
    port = int(command[command.index("--port") + 1])
    log_path = log_dir / f"{name}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            env={**server_env(settings), **env},
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, log_path)
        yield Server(name, base, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def dateline_command(port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "dateline.api.cli", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


def trivial_command(port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "bench.trivial_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


def load(server: Server, paths: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """One load from `bench.loadgen_async` (its own process), with the server tree's CPU."""
    job = {
        "base": server.base,
        "clients": clients,
        "seconds": seconds,
        "max_requests": 10_000_000,
        "paths": paths,
        "headers": {"Accept": "application/json"},
    }
    before_load, before_cpu = load_average(), tree_cpu_s(server.process.pid)
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen_async"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=seconds + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.loadgen_async failed: {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    server_cpu = tree_cpu_s(server.process.pid) - before_cpu
    result["server_cpu_s"] = round(server_cpu, 3)
    result["server_cpu_cores"] = round(server_cpu / result["elapsed_s"], 3)
    result["server_cpu_us_per_request"] = (
        round(1e6 * server_cpu / result["requests"], 1) if result["requests"] else None
    )
    result["load_average_start"], result["load_average_end"] = before_load, load_average()
    return result


# ----------------------------------------------------------------- samples
def status_samples(slugs: list[str], n: int, seed: int = 11) -> list[tuple[str, date, datetime]]:
    """(slug, as_of, known_at): as_of over 2000..the log's end, known_at over
    2000..a day past the log's end (a city unknown then answers unknown)."""
    rng = random.Random(seed)
    start = datetime(2000, 1, 1, tzinfo=UTC)
    span = (LOG_END - start).total_seconds() + 86400
    out = []
    for _ in range(n):
        as_of = start.date() + timedelta(days=rng.randrange((LOG_END - start).days))
        known_at = start + timedelta(seconds=rng.uniform(0, span))
        out.append((rng.choice(slugs), as_of, known_at))
    return out


def status_path(slug: str, as_of: date, known_at: datetime) -> str:
    return f"/cities/{slug}/status?as_of={as_of.isoformat()}&known_at={quote(known_at.isoformat())}"


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    port = int(base.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def representative_body(base: str, paths: list[str]) -> bytes:
    """The status answer of median size among the first 51 paths."""
    bodies = []
    for path in paths[:51]:
        status, body = get(base, path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
        bodies.append(body)
    bodies.sort(key=len)
    return bodies[len(bodies) // 2]


# ------------------------------------------------------------------ figures
def status_http(
    settings: Settings,
    slugs: list[str],
    workers: int,
    clients: int,
    seconds: float,
    rounds: int,
    log: Callable[[str], None],
    before: Path | None = None,
) -> dict[str, Any]:
    paths = [status_path(*s) for s in status_samples(slugs, 4000)]
    with tempfile.TemporaryDirectory(prefix="dateline-reads-") as tmp, ExitStack() as stack:
        if before is not None:  # the same API from an older source tree, as a third load
            older = stack.enter_context(
                serve(
                    "dateline_before",
                    dateline_command(free_port(), workers),
                    settings,
                    Path(tmp),
                    {"PYTHONPATH": str(before)},
                    cwd=before,
                )
            )
        with serve(
            "dateline", dateline_command(free_port(), workers), settings, Path(tmp), {}
        ) as app:
            body = representative_body(app.base, paths)
            env = {"BENCH_TRIVIAL_BODY": body.decode()}
            with serve(
                "trivial", trivial_command(free_port(), workers), settings, Path(tmp), env
            ) as trivial:
                status, trivial_body = get(trivial.base, paths[0])
                assert status == 200 and len(trivial_body) == len(body), (
                    len(trivial_body),
                    len(body),
                )
                servers = {"dateline": app, "trivial": trivial}
                if before is not None:
                    servers["dateline_before"] = older
                for server in servers.values():  # warm-up: every worker's caches and pools
                    load(server, paths, clients, min(3.0, seconds))
                runs: list[dict[str, Any]] = []
                for n in range(rounds):
                    order = list(servers) if n % 2 == 0 else list(reversed(servers))
                    this: dict[str, Any] = {"order": order}
                    for name in order:
                        this[name] = load(servers[name], paths, clients, seconds)
                        r = this[name]
                        log(
                            f"  round {n + 1}/{rounds} {name}: {r['ok_per_s']} req/s, "
                            f"p99 {r['latency']['p99_ms']} ms, server "
                            f"{r['server_cpu_us_per_request']} us/req, client "
                            f"{r['client_cpu_us_per_request']} us/req, codes {r['codes']}"
                        )
                    a, b = this["dateline"], this["trivial"]
                    this["requests_ratio"] = round(a["ok_per_s"] / b["ok_per_s"], 4)
                    this["p99_ratio"] = round(a["latency"]["p99_ms"] / b["latency"]["p99_ms"], 4)
                    this["server_cpu_ratio"] = round(
                        a["server_cpu_us_per_request"] / b["server_cpu_us_per_request"], 4
                    )
                    if before is not None:
                        c = this["dateline_before"]
                        this["before_requests_ratio"] = round(c["ok_per_s"] / b["ok_per_s"], 4)
                        this["before_p99_ratio"] = round(
                            c["latency"]["p99_ms"] / b["latency"]["p99_ms"], 4
                        )
                    runs.append(this)
    requests_ratio = median([r["requests_ratio"] for r in runs])
    p99_ratio = median([r["p99_ratio"] for r in runs])

    def med(name: str, pick: Callable[[dict[str, Any]], float]) -> float | None:
        return median([pick(r[name]) for r in runs])

    return {
        "what": "GET /cities/{slug}/status?as_of&known_at, 16 keep-alive clients, "
        "dateline serve --workers N vs bench.trivial_app (same uvicorn settings and N)",
        "workers": workers,
        "clients": clients,
        "seconds_per_load": seconds,
        "body_bytes": len(body),
        "value": {
            "requests_per_s": med("dateline", lambda r: r["ok_per_s"]),
            "p50_ms": med("dateline", lambda r: r["latency"]["p50_ms"]),
            "p99_ms": med("dateline", lambda r: r["latency"]["p99_ms"]),
            "server_cpu_us_per_request": med("dateline", lambda r: r["server_cpu_us_per_request"]),
        },
        "baseline": {
            "requests_per_s": med("trivial", lambda r: r["ok_per_s"]),
            "p50_ms": med("trivial", lambda r: r["latency"]["p50_ms"]),
            "p99_ms": med("trivial", lambda r: r["latency"]["p99_ms"]),
            "server_cpu_us_per_request": med("trivial", lambda r: r["server_cpu_us_per_request"]),
        },
        "requests_ratio": requests_ratio,
        "p99_ratio": p99_ratio,
        "before": None
        if before is None
        else {
            "source": str(before),
            "requests_per_s": med("dateline_before", lambda r: r["ok_per_s"]),
            "p99_ms": med("dateline_before", lambda r: r["latency"]["p99_ms"]),
            "server_cpu_us_per_request": med(
                "dateline_before", lambda r: r["server_cpu_us_per_request"]
            ),
            "requests_ratio": median([r["before_requests_ratio"] for r in runs]),
            "p99_ratio": median([r["before_p99_ratio"] for r in runs]),
        },
        "server_cpu_ratio": median([r["server_cpu_ratio"] for r in runs]),
        "target": "requests ratio >= 0.8 and p99 ratio <= 1.25",
        "met": bool(
            requests_ratio is not None
            and p99_ratio is not None
            and requests_ratio >= 0.8
            and p99_ratio <= 1.25
        ),
        "client": "bench.loadgen_async: one process, 16 coroutines on uvloop; its CPU "
        "(client_cpu_us_per_request) is taken from the same 2 cores as the servers",
        "rounds": runs,
    }


def timed_gets(
    base: str | dict[str, str], pairs: list[tuple[str, str]], samples: int
) -> dict[str, list[float]]:
    """Latencies of GET for each (label, path), interleaved, the order flipped each
    pass, on one keep-alive connection per server; `base` is one server's URL or
    each label's."""
    bases = base if isinstance(base, dict) else {label: base for label, _ in pairs}
    conns = {
        url: http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=60)
        for url in set(bases.values())
    }
    out: dict[str, list[float]] = {label: [] for label, _ in pairs}
    try:
        for n in range(samples + 20):
            for label, path in pairs if n % 2 == 0 else list(reversed(pairs)):
                conn = conns[bases[label]]
                start = time.perf_counter()
                conn.request("GET", path, headers={"Accept": "application/json"})
                response = conn.getresponse()
                response.read()
                took = time.perf_counter() - start
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status}")
                if n >= 20:  # the first passes warm the workers up
                    out[label].append(took)
    finally:
        for conn in conns.values():
            conn.close()
    return out


@contextmanager
def servers(
    settings: Settings, workers: int, tmp: Path, before: Path | None
) -> Iterator[tuple[Server, Server | None]]:
    """This tree's server and, given `before` (a directory holding `dateline/`, an
    older tree), that tree's, on the same store."""
    with ExitStack() as stack:
        older = None
        if before is not None:
            older = stack.enter_context(
                serve(
                    "dateline_before",
                    dateline_command(free_port(), workers),
                    settings,
                    tmp,
                    {"PYTHONPATH": str(before)},
                    cwd=before,
                )
            )
        server = stack.enter_context(
            serve("dateline", dateline_command(free_port(), workers), settings, tmp, {})
        )
        yield server, older


def city_size(
    app: Dateline,
    settings: Settings,
    workers: int,
    samples: int,
    log: Callable[[str], None],
    before: Path | None = None,
) -> dict[str, Any]:
    big_events = app.read_model.status(BIG_SLUG).version
    small_events = app.read_model.status(SMALL_SLUG).version
    big_intervals = len(app.read_model.timeline(BIG_SLUG)[1])
    small_intervals = len(app.read_model.timeline(SMALL_SLUG)[1])
    with (
        tempfile.TemporaryDirectory(prefix="dateline-reads-") as tmp,
        servers(settings, workers, Path(tmp), before) as (server, older),
    ):
        pairs = [
            ("city_big", f"/cities/{BIG_SLUG}"),
            ("city_small", f"/cities/{SMALL_SLUG}"),
            ("timeline_big", f"/cities/{BIG_SLUG}/timeline"),
            ("timeline_small", f"/cities/{SMALL_SLUG}/timeline"),
        ]
        bases = {label: server.base for label, _ in pairs}
        if older is not None:  # the whole list, as before pages
            pairs += [
                ("before_timeline_big", f"/cities/{BIG_SLUG}/timeline"),
                ("before_timeline_small", f"/cities/{SMALL_SLUG}/timeline"),
            ]
            bases |= {"before_timeline_big": older.base, "before_timeline_small": older.base}
        before_load = load_average()
        times = timed_gets(bases, pairs, samples)
        timeline_bytes = {
            "big": len(get(server.base, f"/cities/{BIG_SLUG}/timeline")[1]),
            "small": len(get(server.base, f"/cities/{SMALL_SLUG}/timeline")[1]),
        }
        if older is not None:
            timeline_bytes["before_big"] = len(get(older.base, f"/cities/{BIG_SLUG}/timeline")[1])
        after_load = load_average()
    summary = {label: summarize(values) for label, values in times.items()}
    inprocess = {
        label: summarize([_timed(partial(call, slug)) for _ in range(samples)])
        for label, slug, call in (
            ("read_model.timeline_big", BIG_SLUG, app.read_model.timeline),
            ("read_model.timeline_small", SMALL_SLUG, app.read_model.timeline),
            ("read_model.status_big", BIG_SLUG, app.read_model.status),
            ("read_model.status_small", SMALL_SLUG, app.read_model.status),
        )
    }
    now = app.clock()
    for label, slug in (("timeline_page_big", BIG_SLUG), ("timeline_page_small", SMALL_SLUG)):
        inprocess[f"read_model.{label}"] = summarize(
            [
                _timed(partial(app.read_model.timeline_page, slug, now, None, 100))
                for _ in range(samples)
            ]
        )

    def ratio(kind: str, stat: str) -> float:
        return round(summary[f"{kind}_big"][stat] / summary[f"{kind}_small"][stat], 3)

    ratios = {
        "city_p50": ratio("city", "p50_ms"),
        "city_p99": ratio("city", "p99_ms"),
        "timeline_p50": ratio("timeline", "p50_ms"),
        "timeline_p99": ratio("timeline", "p99_ms"),
    }
    if older is not None:
        ratios["before_timeline_p50"] = ratio("before_timeline", "p50_ms")
        ratios["before_timeline_p99"] = ratio("before_timeline", "p99_ms")
    result = {
        "what": "GET /cities/{slug} and /cities/{slug}/timeline (its first page) over HTTP, "
        "one client, a big city and a small one interleaved"
        + ("; before_*: the older tree's unpaginated timeline, interleaved too" if older else ""),
        "big_city": {"events": big_events, "intervals": big_intervals},
        "small_city": {"events": small_events, "intervals": small_intervals},
        "timeline_body_bytes": timeline_bytes,
        "http": summary,
        "ratios": ratios,
        "target": "timeline_p50 <= 1.5",
        "met": ratios["timeline_p50"] <= 1.5,
        "inprocess": inprocess,
        "load_average_start": before_load,
        "load_average_end": after_load,
    }
    log(f"  city size: {result['ratios']}")
    return result


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def map_geojson(
    app: Dateline,
    settings: Settings,
    workers: int,
    reps: int,
    log: Callable[[str], None],
    before: Path | None = None,
) -> dict[str, Any]:
    cities = len(app.read_model.city_slugs())
    rng = random.Random(5)
    days = [date(2000, 1, 1) + timedelta(days=rng.randrange(9600)) for _ in range(reps)]
    now_path = "/status?format=geojson"
    dated = [f"/status?format=geojson&as_of={d.isoformat()}" for d in days]
    with (
        tempfile.TemporaryDirectory(prefix="dateline-reads-") as tmp,
        servers(settings, workers, Path(tmp), before) as (server, older),
    ):
        named = {"after": server} | ({"before": older} if older is not None else {})
        before_load = load_average()
        for each in named.values():
            get(each.base, now_path)  # warm-up
        times: dict[str, dict[str, list[float]]] = {n: {"now": [], "past": []} for n in named}
        for n, (kind, path) in enumerate([("now", now_path)] * reps + [("past", p) for p in dated]):
            order = list(named) if n % 2 == 0 else list(reversed(named))
            for name in order:
                base = named[name].base
                times[name][kind].append(_timed(lambda b=base, p=path: get(b, p)))  # type: ignore[misc]
        status, body = get(server.base, now_path)
        identical = None
        if older is not None:  # the same answer, byte for byte, from both trees
            pinned = f"{now_path}&known_at={quote(app.clock().isoformat())}"
            identical = get(server.base, pinned)[1] == get(older.base, pinned)[1]
        after_load = load_average()
    assert status == 200
    features = len(json.loads(body)["features"])
    breakdown = map_breakdown(app, 3)
    every = summarize(times["after"]["now"] + times["after"]["past"])
    result = {
        "what": "GET /status?format=geojson over HTTP (no gzip asked for), one client: "
        f"{reps} times about now and {reps} random past dates"
        + ("; `before`: the older tree, interleaved request by request" if older else ""),
        "cities": cities,
        "features": features,
        "body_bytes": len(body),
        "now": summarize(times["after"]["now"]),
        "past_dates": summarize(times["after"]["past"]),
        "all": every,
        "target": "<= 100 ms",
        "met": every["p50_ms"] <= 100,
        "inprocess_breakdown_ms": breakdown,
        "load_average_start": before_load,
        "load_average_end": after_load,
    }
    if older is not None:
        was = summarize(times["before"]["now"] + times["before"]["past"])
        result["before"] = {
            "now": summarize(times["before"]["now"]),
            "past_dates": summarize(times["before"]["past"]),
            "all": was,
            "p50_ratio_after_to_before": round(every["p50_ms"] / was["p50_ms"], 4),
            "same_bytes_at_a_pinned_known_at": identical,
        }
    log(f"  map: p50 {every['p50_ms']} ms, max {every['max_ms']} ms, {features} features")
    if older is not None:
        log(f"  map before: p50 {result['before']['all']['p50_ms']} ms, same bytes {identical}")
    return result


def map_breakdown(app: Dateline, reps: int) -> dict[str, Any]:
    """Where the map's time goes, in process, about now (medians of `reps`): the
    all-cities query, the causing events' sources (and, for comparison, the way
    they were found before: every change since the earliest `since`), the
    features, the JSON bytes."""
    from pydantic_core import to_json

    from dateline.api.queries import causing_sources
    from dateline.api.routers.status import feature_collection

    parts: dict[str, list[float]] = {}

    def timed(label: str, call: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        value = call(*args)
        parts.setdefault(label, []).append(1000 * (time.perf_counter() - start))
        return value

    for _ in range(reps):
        timed("geojson_one_statement_ms", app.read_model.geojson, None, app.clock())
        views = timed("statuses_query_ms", app.read_model.statuses, None, app.clock())
        sources = timed("sources_by_key_ms", causing_sources, app, views)
        timed("sources_by_scanning_changes_before_ms", _sources_before, app, views)
        collection = timed("features_ms", feature_collection, views, sources)
        timed("to_json_ms", to_json, collection)
    return {label: round(statistics.median(values), 1) for label, values in parts.items()}


def _sources_before(app: Dateline, views: list[Any]) -> int:
    """What api.queries.causing_sources did before issue 8 (one query over every
    change from the earliest `since` to as_of), for the breakdown only."""
    wanted = {v.state.event_id for v in views if v.state.event_id and v.state.since}
    if not wanted:
        return 0
    first = min(v.state.since for v in views if v.state.since)
    last = max(v.as_of for v in views)
    known_at = max(v.known_at for v in views)
    found = [e for e in app.read_model.changes(first, last, known_at) if e.id in wanted]
    return len(found)


def status_inprocess(
    app: Dateline, slugs: list[str], samples: int, log: Callable[[str], None]
) -> dict[str, Any]:
    triples = status_samples(slugs, samples, seed=23)
    status = app.read_model.status
    for triple in triples[:200]:
        status(*triple)
    before = load_average()
    latencies = [_timed(lambda t=t: status(*t)) for t in triples]  # type: ignore[misc]
    after = load_average()
    summary = summarize(latencies)
    log(f"  status in process: p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms")
    return {
        "what": "app.read_model.status(slug, as_of, known_at), random triples, one thread",
        **summary,
        "target": "p99 <= 1 ms",
        "met": summary["p99_ms"] <= 1.0,
        "load_average_start": before,
        "load_average_end": after,
    }


# --------------------------------------------------------------------- run
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__.split("\n")[0])
    p.add_argument("--postgres-url", default=DEFAULT_URL)
    p.add_argument("--cities", type=int, default=10_000)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--big-city", type=int, default=5000)
    p.add_argument("--small-city", type=int, default=10)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--schema", default=None, help="reuse a schema built by an earlier run")
    p.add_argument("--keep-schema", action="store_true")
    p.add_argument("--only", default="status_http,city_size,map_geojson,status_inprocess")
    p.add_argument(
        "--before-source",
        default=None,
        help="a directory holding `dateline/`, an older source tree (e.g. `git archive` into "
        "DIR/dateline), served beside this one",
    )
    p.add_argument(
        "--prepared-json",
        default=None,
        help="with --schema: the summary an earlier run's build printed, kept in the results",
    )
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.quick:
        args.cities, args.events, args.big_city = 300, 5000, 500
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (1.0 if args.quick else 10.0)
    samples = args.samples or (50 if args.quick else 2000)
    only = set(args.only.split(","))
    started, started_at = time.perf_counter(), datetime.now(UTC)
    facts = pg.machine_facts(args.postgres_url)
    facts["load_average_at_start"] = load_average()
    schema = args.schema or new_schema_name("reads")
    settings = Settings(database_url=args.postgres_url, postgres_schema=schema)
    result: dict[str, Any] = {
        "benchmark": "dateline issue 8: reads at a million events",
        "started_at": started_at.isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.reads", *sys.argv[1:]]),
        "schema_reused": args.schema is not None,
        "machine": facts,
        "figures": {},
    }
    app = Dateline(settings, migrate=args.schema is None)
    try:
        if args.schema is None:
            log(f"building {args.cities:,} cities, {args.events:,} events in {schema}")
            prepared = prepare(app, args.cities, args.events, args.big_city, args.small_city, log)
            result["prepared"] = prepared.summary()
        elif args.prepared_json:
            result["prepared"] = json.loads(Path(args.prepared_json).read_text())
        slugs = app.read_model.city_slugs()
        position, events = app.read_model.progress()
        result["store"] = {
            "cities": len(slugs),
            "events_in_read_model": events,
            "events_in_log": app.count_events(),
            "read_model_position": position,
        }
        log(f"store: {result['store']}")
        figures = result["figures"]
        before_source = Path(args.before_source) if args.before_source else None
        if "status_inprocess" in only:
            figures["status_inprocess"] = status_inprocess(app, slugs, samples * 5, log)
        if "map_geojson" in only:
            reps = 5 if args.quick else 10
            figures["map_geojson"] = map_geojson(
                app, settings, args.workers, reps, log, before_source
            )
        if "city_size" in only:
            figures["city_size"] = city_size(
                app, settings, args.workers, samples // 4, log, before_source
            )
        if "status_http" in only:
            figures["status_http"] = status_http(
                settings,
                slugs,
                args.workers,
                args.clients,
                seconds,
                rounds,
                log,
                before_source,
            )
    finally:
        app.close()
        if args.schema is None and not args.keep_schema:
            pg.drop_schema(args.postgres_url, schema)
        elif args.keep_schema:
            log(f"kept schema {schema}")
    facts["load_average_at_end"] = load_average()
    result["wall_time_s"] = round(time.perf_counter() - started, 1)
    out = (
        Path(args.out)
        if args.out
        else RESULTS_DIR
        / ("quick-reads-latest.json" if args.quick else f"{started_at:%Y-%m-%d}-reads.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
