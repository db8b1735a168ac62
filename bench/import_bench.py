"""`dateline import` against a COPY of the same event rows, in one run, interleaved.

    python -m bench.import_bench --events 1000000 --cities 10000 --rounds 3

1. A synthetic archive (bench/synth.py, no retractions: the seed format has
   none) is written once as the seed format's two CSV files, every row with a
   report_id (cached under --workdir).
2. Each round: (A) a fresh, migrated schema; `run_import` (what `dateline
   import` runs: read both files, decide every row on in-memory cities, write
   events, index rows, hash-log entries, read-model rows and position, by COPY)
   is timed from reading the files to the last commit; then (B) the events the
   import stored are dumped (untimed) and COPYed, binary, into an equivalent
   table (same columns, keys, indexes: bench/pg.py), timed. Rounds alternate
   A B A B; the ratio is import events/s over COPY rows/s, per round and the
   median of the rounds. Load average is recorded before and after each phase.
3. `--profile` runs one extra import under cProfile and keeps its top entries.

Results go to bench/results/<date>-import-<events>e.json.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import faulthandler
import io
import json
import os
import pstats
import signal
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import pg
from bench.synth import LogBuilder, SynthConfig
from dateline.domain.city import City
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.importer import run_import
from dateline.infrastructure.settings import Settings

RESULTS = Path(__file__).parent / "results"
DEFAULT_URL = os.environ.get(
    "DATELINE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_archive(events: int, cities: int, folder: Path) -> tuple[Path, Path, float]:
    """The synthetic log as cities.csv + control_events.csv; (events file, cities file, seconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    cities_csv, events_csv = folder / "cities.csv", folder / "control_events.csv"
    if cities_csv.exists() and events_csv.exists():
        return events_csv, cities_csv, 0.0
    started = time.perf_counter()
    builder = LogBuilder(SynthConfig(cities=cities, events=events, retracted=0.0))
    decided: dict[str, City] = {}
    for _, batch in builder.rounds():
        for city in batch:
            decided[city.slug] = city
    with open(cities_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["slug", "name", "province", "country", "lat", "lon", "population",
                    "initial_controller", "tracked_since"])  # fmt: skip
        for city in decided.values():
            w.writerow([city.slug, city.name, city.province, city.country, city.lat, city.lon,
                        city.population, city.initial_controller, city.tracked_since])  # fmt: skip
    with open(events_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["city", "event_type", "occurred_on", "actor", "source_name", "source_url",
                    "source_quote", "note", "report_id", "reported_by"])  # fmt: skip
        for city in decided.values():
            for e in city.pending_events:
                if not isinstance(e, City.ControlEvent):
                    continue
                report_id = e.report_id or f"synth:{city.slug}:{e.originator_version}"
                w.writerow([city.slug, type(e).__name__, e.occurred_on.isoformat(), e.actor,
                            e.source_name, e.source_url or "", e.source_quote or "",
                            e.note or "", report_id, e.reported_by])  # fmt: skip
    return events_csv, cities_csv, time.perf_counter() - started


def fresh_app(url: str, schema: str) -> Dateline:
    pg.drop_schema(url, schema)
    with pg.connect(url) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return Dateline(Settings(database_url=url, postgres_schema=schema), migrate=True)


def import_round(
    url: str, schema: str, events_csv: Path, cities_csv: Path, profile: cProfile.Profile | None
) -> dict[str, Any]:
    app = fresh_app(url, schema)
    try:
        before = load()
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        result = run_import(app, events_csv, cities_csv)
        if profile is not None:
            profile.disable()
        seconds = time.perf_counter() - started
        assert not result.refusals, result.refusals[:3]
        written = result.events_written
        stored = app.recorder.max_notification_id()
        assert app.count_events() == written, (app.count_events(), written)
    finally:
        app.close()
    return {
        "events": written,
        "rows": result.rows,
        "transactions": result.transactions,
        "phases_s": {name: round(value, 2) for name, value in result.seconds.items()},
        "seconds": round(seconds, 3),
        "events_per_s": round(written / seconds, 1),
        "max_notification_id": stored,
        "load_before": before,
        "load_after": load(),
    }


def copy_round(url: str, schema: str, raw_schema: str) -> dict[str, Any]:
    events, index, count = pg.dump_log(url, schema)  # untimed: the bytes to COPY
    before = load()
    times = pg.copy_in(url, raw_schema, events, index)
    return {
        "rows": count,
        "seconds": round(times["events_s"], 3),
        "rows_per_s": round(count / times["events_s"], 1),
        "index_copy_seconds": round(times["index_s"], 3),
        "load_before": before,
        "load_after": load(),
    }


def check_round(url: str, schema: str) -> dict[str, Any]:
    """After the last round: the audit chain verifies and the read model matches the fold."""
    from dateline.infrastructure.audit.service import verify_store

    app = Dateline(Settings(database_url=url, postgres_schema=schema))
    try:
        report = verify_store(app.store)
        differences, pairs = app.check_read_model(samples=20)
    finally:
        app.close()
    return {
        "audit_intact": report.intact,
        "audit_events": report.events,
        "read_model_differences": len(differences),
        "pairs_checked": pairs,
    }


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [r["ratio"] for r in rounds]
    return {
        "rounds_completed": len(rounds),
        "import_events_per_s_median": statistics.median(
            r["import"]["events_per_s"] for r in rounds
        ),
        "copy_rows_per_s_median": statistics.median(r["copy"]["rows_per_s"] for r in rounds),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "target": 0.5,
        "met": statistics.median(ratios) >= 0.5,
    }


def save(
    out_path: Path,
    args: argparse.Namespace,
    started_at: datetime,
    events_csv: Path,
    synth_s: float,
    rounds: list[dict[str, Any]],
    checks: dict[str, Any] | None,
    profile_top: list[str] | None,
) -> None:
    """Written after every round too, so a run cut short keeps what it measured."""
    out_path.write_text(
        json.dumps(
            {
                "benchmark": "dateline import vs binary COPY of the same event rows",
                "started_at": started_at.isoformat(),
                "command": f"python -m bench.import_bench --events {args.events} "
                f"--cities {args.cities} --rounds {args.rounds}",
                "archive": {"events_csv": str(events_csv), "synth_seconds": round(synth_s, 1)},
                "machine": pg.machine_facts(args.url),
                "figures": summary(rounds),
                "rounds": rounds,
                "checks": checks,
                "profile_top": profile_top,
            },
            indent=2,
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--cities", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/dateline-import-bench"))
    p.add_argument("--profile", action="store_true", help="one more import under cProfile")
    p.add_argument("--check", action="store_true", help="audit verify + projections check after")
    p.add_argument("--out", type=Path)
    p.add_argument("--only-archive", action="store_true", help="write the CSV files and stop")
    args = p.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID`: where is it?

    started_at = datetime.now(UTC)
    folder = args.workdir / f"{args.cities}c-{args.events}e"
    events_csv, cities_csv, synth_s = write_archive(args.events, args.cities, folder)
    if args.only_archive:
        print(f"{events_csv} ({synth_s:.0f} s)")
        return
    tag = uuid.uuid4().hex[:6]
    schema, raw_schema = f"bench_import_{tag}", f"bench_copy_{tag}"
    pg.create_raw_tables(args.url, raw_schema)
    rounds: list[dict[str, Any]] = []
    checks: dict[str, Any] | None = None
    profile_top: list[str] | None = None
    try:
        for i in range(args.rounds):
            a = import_round(args.url, schema, events_csv, cities_csv, None)
            b = copy_round(args.url, schema, raw_schema)
            ratio = a["events_per_s"] / b["rows_per_s"]
            rounds.append({"round": i + 1, "import": a, "copy": b, "ratio": round(ratio, 4)})
            partial = args.out or RESULTS / f"{started_at:%Y-%m-%d}-import-{args.events}e.json"
            save(partial, args, started_at, events_csv, synth_s, rounds, None, None)
            print(
                f"round {i + 1}: import {a['events']:,} events in {a['seconds']:.1f} s "
                f"{a['phases_s']} "
                f"({a['events_per_s']:,.0f}/s), COPY {b['rows']:,} rows in {b['seconds']:.2f} s "
                f"({b['rows_per_s']:,.0f}/s), ratio {ratio:.3f}, load {a['load_before']}",
                flush=True,
            )
        if args.profile:
            profiler = cProfile.Profile()
            import_round(args.url, schema, events_csv, cities_csv, profiler)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
            profile_top = out.getvalue().splitlines()
            print("\n".join(profile_top[:80]))
        # Last: the read-model check compares every city and is slow at this scale
        # (it did not finish in 30 minutes at 100,000 events over 1,000 cities).
        checks = check_round(args.url, schema) if args.check else None
    finally:
        pg.drop_schema(args.url, schema)
        pg.drop_schema(args.url, raw_schema)

    print(json.dumps(summary(rounds), indent=2))
    out_path = args.out or RESULTS / f"{started_at:%Y-%m-%d}-import-{args.events}e.json"
    save(out_path, args, started_at, events_csv, synth_s, rounds, checks, profile_top)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
