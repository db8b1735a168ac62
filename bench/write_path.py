"""The write-path benchmark (issue 7): appends measured as ratios against baselines
taken in the same run, interleaved A B A B, medians of rounds.

    .venv/bin/python -m bench.write_path                 # 3 rounds of 10 s per load
    .venv/bin/python -m bench.write_path --quick         # 1 round of 2 s: under a minute
    .venv/bin/python -m bench.write_path --rounds 3 --seconds 10 --writers 16 \\
        --postgres-url postgresql://postgres@127.0.0.1:5432/test --out FILE

Each round runs every load once (the order reversed on every other round):
Dateline.report in process on PostgreSQL; a plain eventsourcing application;
raw psycopg INSERT + COMMIT; HTTP appends to `dateline serve` on PostgreSQL and on
the embedded SQLite store. Then single-writer appends to a 5,000-event city and
to 10-event cities, interleaved. The load average is recorded around every load.
Everything is written in fresh schemas / a temporary SQLite file, dropped after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import pg
from bench.write_path_http import Served, start
from bench.write_path_load import (
    DatelineLoad,
    LoadResult,
    PlainApplication,
    PlainLoad,
    city_size_samples,
    new_schema_name,
    plain_env,
    process_cpu_s,
    profile_dateline,
)
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings

DEFAULT_URL = os.environ.get(
    "DATELINE_BENCH_POSTGRES_URL",
    os.environ.get("DATELINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
RESULTS_DIR = Path(__file__).parent / "results"
LOADS = ("dateline", "library", "raw", "http_postgres", "http_sqlite")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.write_path", description=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--quick", action="store_true", help="1 round of 2 s, fewer samples")
    p.add_argument("--rounds", type=int, help="rounds of every load (default 3, quick 1)")
    p.add_argument("--seconds", type=float, help="seconds per load (default 10, quick 2)")
    p.add_argument("--writers", type=int, default=16, help="threads / reporters / connections")
    p.add_argument("--cities-per-writer", type=int, default=4)
    p.add_argument("--samples", type=int, help="city-size appends of each kind (400, quick 60)")
    p.add_argument("--big-city", type=int, default=5000, help="events in the big city")
    p.add_argument("--small-city", type=int, default=10, help="events in a small city")
    p.add_argument(
        "--library-rollover",
        type=int,
        default=50,
        help="events per aggregate before the library baseline starts a new one",
    )
    p.add_argument("--postgres-url", default=DEFAULT_URL)
    p.add_argument("--no-http", action="store_true", help="skip the HTTP loads")
    p.add_argument(
        "--profile", action=argparse.BooleanOptionalAction, help="cProfile the writer thread"
    )
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/<date>-write-path)")
    p.add_argument("--keep-schema", action="store_true", help="do not drop the schemas (debug)")
    return p


# ------------------------------------------------------------------ figures
@dataclass
class Figure:
    key: str
    title: str
    baseline_description: str
    target: str
    unit: str
    value: float | None = None
    baseline: float | None = None
    ratio: float | None = None
    met: bool | None = None
    missed_by: str | None = None
    rounds: list[dict[str, Any]] | None = None
    details: dict[str, Any] | None = None

    def judge(self, at_least: float | None = None, at_most: float | None = None) -> None:
        if self.ratio is None:
            return
        if at_least is not None:
            self.met = self.ratio >= at_least
            if not self.met:
                self.missed_by = (
                    f"ratio {self.ratio:.3g} < {at_least} "
                    f"({at_least / self.ratio if self.ratio else float('inf'):.2f}x short)"
                )
        if at_most is not None:
            self.met = self.ratio <= at_most
            if not self.met:
                over = self.ratio / at_most
                self.missed_by = f"ratio {self.ratio:.3g} > {at_most} ({over:.2f}x over)"


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None


def paired(
    rounds: list[dict[str, Any]], a: str, b: str, field: str = "events_per_s"
) -> tuple[float | None, float | None, float | None, list[dict[str, Any]]]:
    """Median of A, of B and of the per-round ratios A/B (rounds paired in time)."""
    per_round = []
    for r in rounds:
        x, y = r.get(a, {}).get(field), r.get(b, {}).get(field)
        ratio = round(x / y, 4) if x is not None and y else None
        per_round.append({"value": x, "baseline": y, "ratio": ratio})
    return (
        median([p["value"] for p in per_round]),
        median([p["baseline"] for p in per_round]),
        median([p["ratio"] for p in per_round]),
        per_round,
    )


def figures(rounds: list[dict[str, Any]], size: dict[str, Any] | None) -> list[Figure]:
    out = []
    f = Figure(
        "append_vs_library",
        "append in process, 16 threads, PostgreSQL (Dateline.report, own cities each)",
        "plain eventsourcing 9.5 application: one trivial aggregate, get + trigger + save",
        ">= 1.5",
        "events/s",
    )
    f.value, f.baseline, f.ratio, f.rounds = paired(rounds, "dateline", "library")
    f.judge(at_least=1.5)
    out.append(f)
    f = Figure(
        "append_vs_raw",
        "append in process, 16 threads, PostgreSQL (Dateline.report, own cities each)",
        "raw psycopg INSERT + COMMIT, one row per transaction, 16 connections",
        ">= 0.5",
        "events/s",
    )
    f.value, f.baseline, f.ratio, f.rounds = paired(rounds, "dateline", "raw")
    f.judge(at_least=0.5)
    out.append(f)
    f = Figure(
        "append_p50_city_size",
        "append p50 to a city of 5,000 events (single writer, PostgreSQL, in process)",
        "append p50 to a city of 10 events, interleaved",
        "<= 1.5",
        "ms",
    )
    if size is not None:
        f.value, f.baseline = size["big"]["p50_ms"], size["small"]["p50_ms"]
        f.ratio = round(f.value / f.baseline, 4) if f.baseline else None
        f.details = size
        f.judge(at_most=1.5)
    out.append(f)
    f = Figure(
        "http_sqlite_vs_postgres",
        "HTTP appends, 16 reporters, embedded SQLite (dateline serve)",
        "the same on PostgreSQL",
        ">= 0.5 and 0 x 503",
        "acknowledged events/s",
    )
    if rounds and "http_sqlite" in rounds[0]:
        f.value, f.baseline, f.ratio, f.rounds = paired(rounds, "http_sqlite", "http_postgres")
        f.judge(at_least=0.5)
        answers_503 = sum(r["http_sqlite"]["answers_503"] for r in rounds)
        non_2xx = {
            load: sum(r[load]["non_2xx"] for r in rounds)
            for load in ("http_sqlite", "http_postgres")
        }
        f.details = {"answers_503_sqlite": answers_503, "non_2xx": non_2xx}
        if answers_503:
            f.met = False
            note = f"{answers_503} answers 503 on SQLite"
            f.missed_by = f"{f.missed_by}; {note}" if f.missed_by else note
    out.append(f)
    f = Figure(
        "http_vs_inprocess",
        "HTTP appends, 16 reporters, PostgreSQL (dateline serve)",
        "in-process appends, 16 threads, same run",
        ">= 0.7",
        "acknowledged events/s",
    )
    if rounds and "http_postgres" in rounds[0]:
        f.value, f.baseline, f.ratio, f.rounds = paired(rounds, "http_postgres", "dateline")
        f.judge(at_least=0.7)
    out.append(f)
    return out


# ------------------------------------------------------------------ the run
def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Run:
    def __init__(self, args: argparse.Namespace, log: Callable[[str], None]) -> None:
        self.args = args
        self.log = log
        quick = args.quick
        self.rounds = args.rounds or (1 if quick else 3)
        self.seconds = args.seconds or (2.0 if quick else 10.0)
        self.warmup = 0.5 if quick else min(2.0, self.seconds / 4)
        self.samples = args.samples or (60 if quick else 400)
        self.profile = args.profile if args.profile is not None else not quick
        self.url = args.postgres_url
        tag = new_schema_name("wp")
        self.schemas = {
            "dateline": tag,
            "library": f"{tag}_lib",
            "raw": f"{tag}_raw",
            "http": f"{tag}_http",
        }

    def execute(self) -> dict[str, Any]:
        started = time.perf_counter()
        started_at = datetime.now(UTC)
        facts = pg.machine_facts(self.url)
        facts["load_average_at_start"] = load_average()
        a = self.args
        settings = Settings(database_url=self.url, postgres_schema=self.schemas["dateline"])
        rounds: list[dict[str, Any]] = []
        size: dict[str, Any] | None = None
        profile: dict[str, Any] | None = None
        phases: dict[str, float] = {}
        with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="dateline-wp-") as tmp:
            stack.callback(self.drop_schemas)
            t0 = time.perf_counter()
            app = Dateline(settings, migrate=True)
            stack.callback(app.close)
            pg.create_raw_tables(self.url, self.schemas["raw"])
            pg.connect(self.url).execute(
                f'CREATE SCHEMA IF NOT EXISTS "{self.schemas["library"]}"'
            ).connection.close()
            library = PlainApplication(env=plain_env(self.url, self.schemas["library"]))
            stack.callback(library.close)
            dateline_load = DatelineLoad(app, a.writers, a.cities_per_writer, "wp-live")
            library_load = PlainLoad(library, a.writers, a.library_rollover)
            runners: dict[str, Callable[[float], dict[str, Any]]] = {
                "dateline": lambda s: dateline_load.run(s).summary(),
                "library": lambda s: library_load.run(s).summary(),
                "raw": self.raw_runner(a.writers),
            }
            if not a.no_http:
                http_settings = {
                    "http_postgres": Settings(
                        database_url=self.url, postgres_schema=self.schemas["http"]
                    ),
                    "http_sqlite": Settings(database_url=f"sqlite:///{tmp}/dateline.sqlite"),
                }
                for name, s in http_settings.items():
                    served = Served(name, s, a.writers, a.cities_per_writer)
                    served.prepare(self.rounds + 1)
                    start(stack, served, Path(tmp))
                    runners[name] = served.run
            phases["setup_s"] = round(time.perf_counter() - t0, 1)
            self.log(f"set up in {phases['setup_s']} s; warm-up {self.warmup} s per load")
            t0 = time.perf_counter()
            for runner in runners.values():
                runner(self.warmup)
            topic, state = pg.sample_event(self.url, self.schemas["dateline"])
            self.raw_event = (topic, state)
            phases["warmup_s"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            for n in range(self.rounds):
                order = list(runners) if n % 2 == 0 else list(reversed(runners))
                this: dict[str, Any] = {"order": order}
                for name in order:
                    before = load_average()
                    result = runners[name](self.seconds)
                    result["load_average_start"] = before
                    result["load_average_end"] = load_average()
                    this[name] = result
                    self.log(
                        f"round {n + 1}/{self.rounds} {name}: {result['events_per_s']} /s, "
                        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                        f"load {before[0]} -> {result['load_average_end'][0]}"
                    )
                rounds.append(this)
            phases["rounds_s"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            before = load_average()
            size = city_size_samples(
                app,
                a.big_city,
                a.small_city,
                self.samples,
                cold=3 if a.quick else 10,
                prefix="wp-size",
            )
            size["load_average_start"], size["load_average_end"] = before, load_average()
            self.log(
                f"city size: {a.big_city} events p50 {size['big']['p50_ms']} ms, "
                f"{a.small_city} events p50 {size['small']['p50_ms']} ms"
            )
            phases["city_size_s"] = round(time.perf_counter() - t0, 1)
            if self.profile:
                t0 = time.perf_counter()
                profile = profile_dateline(dateline_load, self.seconds)
                phases["profile_s"] = round(time.perf_counter() - t0, 1)
        facts["load_average_at_end"] = load_average()
        figs = figures(rounds, size)
        return {
            "benchmark": "dateline issue 7: the write path",
            "started_at": started_at.isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - started, 1),
            "quick": bool(a.quick),
            "command": " ".join(["python -m bench.write_path", *sys.argv[1:]]),
            "settings": {
                "rounds": self.rounds,
                "seconds_per_load": self.seconds,
                "warmup_s": self.warmup,
                "writers": a.writers,
                "cities_per_writer": a.cities_per_writer,
                "city_size_samples": self.samples,
                "big_city_events": a.big_city,
                "small_city_events": a.small_city,
                "library_rollover_events": a.library_rollover,
                "dateline": {
                    "writer_batch_size": settings.writer_batch_size,
                    "city_cache_size": settings.city_cache_size,
                    "snapshot_interval": settings.snapshot_interval,
                    "postgres_pool_size": settings.postgres_pool_size,
                    "postgres_max_overflow": settings.postgres_max_overflow,
                },
                "raw_event_bytes": len(self.raw_event[1]) if hasattr(self, "raw_event") else None,
            },
            "machine": facts,
            "phases_s": phases,
            "figures": {f.key: asdict(f) for f in figs},
            "rounds": rounds,
            "writer_profile": profile,
        }

    def raw_runner(self, writers: int) -> Callable[[float], dict[str, Any]]:
        def run(seconds: float) -> dict[str, Any]:
            topic, state = getattr(self, "raw_event", ("City.Contested", b"{}" * 150))
            schema = self.schemas["raw"]
            pg.truncate_raw(self.url, schema)
            cpu = process_cpu_s()
            rows, elapsed, latencies = pg.raw_insert_writers(
                self.url, schema, topic, state, writers, seconds
            )
            cpu = process_cpu_s() - cpu  # includes connecting: a little high
            result = LoadResult(rows, 0, elapsed, latencies)
            result.cpu = {
                "process_cpu_cores": round(cpu / elapsed, 3),
                "process_cpu_ms_per_event": round(1000 * cpu / rows, 3) if rows else None,
            }
            return result.summary()

        return run

    def drop_schemas(self) -> None:
        if self.args.keep_schema:
            self.log(f"kept schemas {sorted(self.schemas.values())}")
            return
        for schema in self.schemas.values():
            pg.drop_schema(self.url, schema)


# ------------------------------------------------------------------ output
def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def table(result: dict[str, Any]) -> str:
    rows = [("figure", "value", "baseline", "ratio", "target", "met")]
    for key, f in result["figures"].items():
        met = {True: "met", False: "MISSED", None: "-"}[f["met"]]
        unit = f["unit"].split()[-1]
        rows.append(
            (
                key,
                f"{fmt(f['value'])} {unit}",
                f"{fmt(f['baseline'])} {unit}",
                fmt(f["ratio"]),
                f["target"],
                met,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    misses = [f"  {k}: {f['missed_by']}" for k, f in result["figures"].items() if f["met"] is False]
    m = result["machine"]
    s = result["settings"]
    header = (
        f"Dateline write path: {s['rounds']} round(s) x {s['seconds_per_load']:g} s per load, "
        f"{s['writers']} writers; {m['cpu_count']} CPUs, PostgreSQL "
        f"{m['postgres']['server_version'].split()[0]} "
        f"(synchronous_commit={m['postgres']['synchronous_commit']}), commit {m['git_commit']}, "
        f"load {m['load_average_at_start'][0]} -> {m['load_average_at_end'][0]}, "
        f"wall time {result['wall_time_s']:.0f} s"
    )
    return "\n".join([header, "", *lines, *(["", "missed:", *misses] if misses else [])])


def default_out(result: dict[str, Any]) -> Path:
    if result["quick"]:
        return Path(tempfile.gettempdir()) / "dateline-write-path-quick.json"
    return RESULTS_DIR / f"{result['started_at'][:10]}-write-path.json"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = Run(args, log).execute()
    out = args.out or default_out(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(table(result))
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
