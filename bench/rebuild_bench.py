"""`dateline projections rebuild` on a big log, against reading the same rows raw.

    .venv/bin/python -m bench.rebuild_bench [--events 1000000] [--cities 10000] [--rounds 3]
        [--profile]

The log is the synthetic newsroom log (`bench.synth`): every event decided by
the real aggregate, turned into stored events by the application's own mapper
and COPYed into the application's tables in notification order (appending a
million events one transaction at a time would take most of an hour). Then,
alternating, in the same run: the baseline (the same event rows, in the same
order, through one server-side cursor with psycopg, nothing decoded) and the
rebuild (`Dateline.projection.rebuild()`, what the command runs). Medians of
the rounds, their ratio, and the load average around each run. `--profile`
adds one profiled rebuild and where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import time
import types
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import pg
from bench.synth import LogBuilder, SynthConfig
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.read_model.rebuild import Rebuild
from dateline.infrastructure.settings import Settings

DEFAULT_URL = os.environ.get(
    "DATELINE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
RESULTS = Path(__file__).parent / "results"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def fill_log(app: Dateline, url: str, schema: str, config: SynthConfig) -> dict[str, Any]:
    """Decide the synthetic log and COPY its stored events (the mapper's) and
    index rows into the application's tables, round by round, in record order."""
    builder = LogBuilder(config)
    started = time.perf_counter()
    events = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for _, cities in builder.rounds():
            stored = []
            index = []
            for city in cities:
                for event in city.collect_events():
                    stored.append(app.mapper.to_stored_event(event))
                    index.append(
                        (
                            event.originator_id,
                            event.originator_version,
                            city.slug,
                            type(event).__name__,
                            event.timestamp,
                            getattr(event, "occurred_on", None),
                            getattr(event, "report_id", None),
                        )
                    )
            with cur.copy(
                f'COPY "{schema}".dateline_events '
                "(originator_id, originator_version, topic, state) FROM STDIN"
            ) as copy:
                for s in stored:
                    copy.write_row((s.originator_id, s.originator_version, s.topic, s.state))
            with cur.copy(
                f'COPY "{schema}".dateline_event_index ({pg.INDEX_COLUMNS}) FROM STDIN'
            ) as copy:
                for row in index:
                    copy.write_row(row)
            events += len(stored)
        # Nothing for a start-up catch-up to do: the rebuild sets the real position.
        cur.execute(
            f'UPDATE "{schema}".dateline_projection_tracking SET notification_id = '
            f'(SELECT max(notification_id) FROM "{schema}".dateline_events)'
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'VACUUM ANALYZE "{schema}".dateline_events')
        conn.execute(f'VACUUM ANALYZE "{schema}".dateline_event_index')
    return {
        "events": events,
        "cities": config.cities,
        "seconds": round(time.perf_counter() - started, 1),
        "stats": {k: v for k, v in vars(builder.stats).items() if isinstance(v, (int, dict))},
    }


def rebuild_once(app: Dateline) -> tuple[int, float, dict[str, float]]:
    run = Rebuild(app.projection)
    started = time.perf_counter()
    applied = run.run()
    return applied, time.perf_counter() - started, run.timings


def old_rebuild(rev: str) -> Any:
    """The rebuild as it was at git revision `rev` (its `catch_up` module, loaded
    beside today's), to time it in the same run."""
    source = subprocess.run(
        ["git", "show", f"{rev}:infrastructure/read_model/catch_up.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    ).stdout
    module = types.ModuleType(f"catch_up_at_{rev}")
    exec(compile(source, f"{rev}:catch_up.py", "exec"), module.__dict__)
    return module.CatchUp


def profile_once(app: Dateline, top: int = 25) -> dict[str, Any]:
    profiler = cProfile.Profile()
    profiler.enable()
    _, seconds, timings = rebuild_once(app)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    rows = []
    for (file, line, name), (_, calls, tottime, cumtime, _) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: -item[1][2],
    )[:top]:
        rows.append(
            {
                "function": f"{Path(file).name}:{line}:{name}",
                "calls": calls,
                "tottime_s": round(tottime, 3),
                "cumtime_s": round(cumtime, 3),
            }
        )
    print(out.getvalue()[:6000])
    return {"seconds_profiled": round(seconds, 2), "timings": timings, "by_tottime": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cities", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument(
        "--against-rev", help="also time the rebuild as it was at this git revision (e.g. main)"
    )
    args = parser.parse_args()

    schema = f"bench_rebuild_{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=args.url, postgres_schema=schema)
    app = Dateline(settings, migrate=True)
    result: dict[str, Any] = {
        "benchmark": "projections rebuild vs raw read",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": pg.machine_facts(args.url),
        "target": "rebuild events/s >= 0.25 x raw rows/s",
    }
    try:
        print(f"filling {args.events:,} events over {args.cities:,} cities in {schema} ...")
        result["log"] = fill_log(app, args.url, schema, SynthConfig(args.cities, args.events))
        print(f"  {result['log']}")
        runs: list[dict[str, Any]] = []
        old = old_rebuild(args.against_rev) if args.against_rev else None
        for r in range(args.rounds):
            before = load()
            rows, raw_s = pg.raw_stream(args.url, schema)
            runs.append(
                {"round": r, "what": "raw", "rows": rows, "seconds": round(raw_s, 3),
                 "per_s": round(rows / raw_s, 1), "load_before": before, "load_after": load()}
            )  # fmt: skip
            print(
                f"  raw     {rows:,} rows in {raw_s:.2f} s ({rows / raw_s:,.0f}/s), load {load()}"
            )
            before = load()
            applied, seconds, timings = rebuild_once(app)
            runs.append(
                {"round": r, "what": "rebuild", "events": applied, "seconds": round(seconds, 3),
                 "per_s": round(applied / seconds, 1), "phases_s": {
                     k: round(v, 3) for k, v in timings.items()},
                 "load_before": before, "load_after": load()}
            )  # fmt: skip
            print(
                f"  rebuild {applied:,} events in {seconds:.2f} s ({applied / seconds:,.0f}/s) "
                f"{ {k: round(v, 2) for k, v in timings.items()} }, load {load()}"
            )
            if old is not None:
                before = load()
                started = time.perf_counter()
                applied = old(app, app.read_model).rebuild()
                seconds = time.perf_counter() - started
                runs.append(
                    {"round": r, "what": f"rebuild at {args.against_rev}", "events": applied,
                     "seconds": round(seconds, 3), "per_s": round(applied / seconds, 1),
                     "load_before": before, "load_after": load()}
                )  # fmt: skip
                print(
                    f"  rebuild at {args.against_rev}: {applied:,} events in {seconds:.2f} s "
                    f"({applied / seconds:,.0f}/s), load {load()}"
                )
        raw = statistics.median(x["per_s"] for x in runs if x["what"] == "raw")
        rebuilt = statistics.median(x["per_s"] for x in runs if x["what"] == "rebuild")
        step = 3 if old is not None else 2
        pairs = [
            runs[i + 1]["per_s"] / runs[i]["per_s"] for i in range(0, len(runs), step)
        ]  # rebuild over the raw read just before it
        result["runs"] = runs
        result["median"] = {
            "raw_rows_per_s": round(raw, 1),
            "rebuild_events_per_s": round(rebuilt, 1),
            "ratio_of_medians": round(rebuilt / raw, 4),
            "median_of_round_ratios": round(statistics.median(pairs), 4),
        }
        if old is not None:
            before_rate = statistics.median(
                x["per_s"] for x in runs if x["what"].startswith("rebuild at")
            )
            result["median"][f"rebuild_at_{args.against_rev}_events_per_s"] = round(before_rate, 1)
            result["median"][f"ratio_at_{args.against_rev}"] = round(before_rate / raw, 4)
            result["median"]["speed_up"] = round(rebuilt / before_rate, 2)
        result["meets_target"] = rebuilt / raw >= 0.25
        print(f"median: {result['median']}")
        if args.profile:
            result["profile"] = profile_once(app)
        app_check = app.read_model.progress()
        result["read_model_progress"] = {"position": app_check[0], "events": app_check[1]}
    finally:
        app.close()
        if not args.keep:
            pg.drop_schema(args.url, schema)
    RESULTS.mkdir(exist_ok=True)
    name = f"{datetime.now(UTC):%Y-%m-%d}-rebuild-{args.cities}c-{args.events}e.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote bench/results/{name}")


if __name__ == "__main__":
    main()
