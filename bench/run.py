"""Run the Dateline benchmark (issue 4) and print / save its figures.

    .venv/bin/python -m bench.run              # 10,000 cities, 1,000,000 events
    .venv/bin/python -m bench.run --quick      # CI smoke size, no timing assertions

It builds a synthetic log in a fresh PostgreSQL schema (dropped afterwards),
measures every figure of docs/performance.md against its baseline from the same
run, prints a table and saves it as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import analysis, inprocess, pg
from bench.figures import KEYS, Figure
from bench.synth import LogBuilder, SynthConfig
from dateline.infrastructure.application import Dateline, utc_now
from dateline.infrastructure.settings import Settings

DEFAULT_URL = os.environ.get(
    "DATELINE_BENCH_POSTGRES_URL",
    os.environ.get("DATELINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
RESULTS_DIR = Path(__file__).parent / "results"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke size: 200 cities, 5,000 events")
    p.add_argument("--cities", type=int, help="default 10,000 (quick: 200)")
    p.add_argument("--events", type=int, help="default 1,000,000 (quick: 5,000)")
    p.add_argument("--backdated", type=float, default=0.05, help="share of backdated reports")
    p.add_argument("--retracted", type=float, default=0.01, help="share of retractions")
    p.add_argument("--postgres-url", default=DEFAULT_URL)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--writers", type=int, default=16, help="concurrent writers / clients")
    p.add_argument("--seconds", type=float, help="per load phase (default 15, quick 2)")
    p.add_argument("--samples", type=int, help="status reads (default 5,000, quick 300)")
    p.add_argument("--batch-size", type=int, default=64, help="cities per import_cities save")
    p.add_argument("--no-http", action="store_true", help="skip the HTTP figures")
    p.add_argument("--out", type=Path, help="JSON file (default: bench/results/<date>-<size>.json)")
    p.add_argument("--keep-schema", action="store_true", help="do not drop the schema (debug)")
    return p


class Run:
    def __init__(self, args: argparse.Namespace, log: Callable[[str], None]) -> None:
        self.args = args
        self.log = log
        quick = args.quick
        self.cities = args.cities or (200 if quick else 10_000)
        self.events = args.events or (5_000 if quick else 1_000_000)
        self.seconds = args.seconds or (2.0 if quick else 15.0)
        self.samples = args.samples or (300 if quick else 5_000)
        self.url = args.postgres_url
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        self.figures: dict[str, Figure] = {}
        self.phases: dict[str, float] = {}

    def phase(self, name: str, action: Callable[[], Any]) -> Any:
        self.log(f"[{name}]")
        start = time.perf_counter()
        try:
            return action()
        finally:
            self.phases[name] = round(time.perf_counter() - start, 2)
            self.log(f"[{name}] {self.phases[name]:.1f} s")

    def add(self, *figures: Figure) -> None:
        for figure in figures:
            if figure.met is False and figure.limited_by is None:
                figure.limited_by = analysis.LIMITS.get(figure.key)
            self.figures[figure.key] = figure

    def execute(self) -> dict[str, Any]:
        started = time.perf_counter()
        started_at = datetime.now(UTC)
        facts = pg.machine_facts(self.url)
        facts["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
        config = SynthConfig(
            self.cities,
            self.events,
            self.args.backdated,
            self.args.retracted,
            self.args.seed,
        )
        builder = LogBuilder(config)
        settings = Settings(database_url=self.url, postgres_schema=self.schema)
        self.log(f"schema {self.schema}: {self.cities:,} cities, {self.events:,} events")
        app: Dateline | None = None
        try:
            pg.create_raw_tables(self.url, self.schema)
            app = Dateline(settings, clock=builder.clock, migrate=True)
            loaded = self.phase(
                "bulk import",
                lambda: inprocess.load_log(app, builder, self.args.batch_size, self.log),
            )
            self.add(
                self.phase(
                    "bulk import baseline (COPY)",
                    lambda: inprocess.bulk_import_figure(self.url, self.schema, loaded),
                )
            )
            with pg.connect(self.url) as conn:
                conn.execute(f'ANALYZE "{self.schema}".dateline_events')
                conn.execute("ANALYZE")
            app.clock = utc_now
            # The synthetic log's millions of objects stay alive in this process; a
            # server would not hold them. Keep the cyclic GC from scanning them.
            gc.collect()
            gc.freeze()
            reps = 50 if self.args.quick else 300
            self.add(*self.phase("replay", lambda: inprocess.replay_figures(app, builder, reps)))
            self.add(
                self.phase(
                    "projection rebuild",
                    lambda: inprocess.rebuild_figure(app, self.url, self.schema),
                )
            )
            # The rebuild swapped in fresh, analyzed tables; vacuum them anyway (their
            # visibility map), as autovacuum would within a minute, for the reads.
            with pg.connect(self.url) as conn:
                for table in inprocess.READ_MODEL_TABLES:
                    if conn.execute(
                        "SELECT to_regclass(%s)", (f'"{self.schema}".{table}',)
                    ).fetchone()[0]:
                        conn.execute(f'VACUUM ANALYZE "{self.schema}".{table}')
            self.add(
                self.phase(
                    "status in process",
                    lambda: inprocess.status_figure(app, builder, self.samples),
                )
            )
            self.add(
                self.phase("map", lambda: inprocess.map_figure(app, 3 if self.args.quick else 10))
            )
            self.add(
                self.phase(
                    "append in process",
                    lambda: inprocess.append_figure(
                        app, builder, self.url, self.schema, self.args.writers, self.seconds
                    ),
                )
            )
            if self.args.no_http:
                for key in ("append_http", "status_http"):
                    self.add(Figure.not_measured(key, "skipped (--no-http)"))
            else:
                from bench import http

                self.add(
                    *self.phase(
                        "http",
                        lambda: http.http_figures(
                            settings, builder, self.args.writers, self.seconds, self.samples
                        ),
                    )
                )
        finally:
            gc.unfreeze()
            if app is not None:
                app.close()
            if not self.args.keep_schema:
                pg.drop_schema(self.url, self.schema)
        facts["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        for key in KEYS:
            if key not in self.figures:
                self.add(Figure.not_measured(key, "not reached"))
        return {
            "benchmark": "dateline issue 4",
            "started_at": started_at.isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - started, 1),
            "quick": bool(self.args.quick),
            "size": {
                "cities": self.cities,
                "events_requested": self.events,
                "events_loaded": loaded.events,
                "backdated": self.args.backdated,
                "retracted": self.args.retracted,
                "seed": self.args.seed,
                "synthetic_log": builder.stats.__dict__,
            },
            "settings": {
                "writers": self.args.writers,
                "seconds_per_load_phase": self.seconds,
                "status_samples": self.samples,
                "import_batch_size": self.args.batch_size,
                "snapshot_interval": settings.snapshot_interval,
            },
            "machine": facts,
            "phases_s": self.phases,
            "figures": {key: self.figures[key].to_dict() for key in KEYS},
        }


# ------------------------------------------------------------------- output
def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def headline(numbers: dict[str, Any] | None) -> str:
    if not numbers:
        return "-"
    keep = [k for k in numbers if k.endswith(("_per_s", "_ms", "_us")) or k == "cities"][:3]
    return ", ".join(f"{k} {fmt(numbers[k])}" for k in keep)


def table(result: dict[str, Any]) -> str:
    rows = [("figure", "value", "baseline", "ratio", "target", "met")]
    for key, f in result["figures"].items():
        if f["status"] != "measured":
            rows.append((key, f["status"], "-", "-", f["target"], "-"))
            continue
        met = {True: "met", False: "MISSED", None: "-"}[f["met"]]
        rows.append(
            (key, headline(f["value"]), headline(f["baseline"]), fmt(f["ratio"]), f["target"], met)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    misses = [
        f"  {k}: {f['missed_by']}"
        + (f"\n    limited by: {f['limited_by']}" if f["limited_by"] else "")
        for k, f in result["figures"].items()
        if f["met"] is False
    ]
    size = result["size"]
    header = (
        f"Dateline benchmark: {size['cities']:,} cities, {size['events_loaded']:,} events "
        f"({size['backdated']:.0%} backdated, {size['retracted']:.0%} retracted), "
        f"{result['machine']['cpu_count']} CPUs, PostgreSQL "
        f"{result['machine']['postgres']['server_version'].split()[0]} "
        f"(synchronous_commit={result['machine']['postgres']['synchronous_commit']}), "
        f"wall time {result['wall_time_s']:.0f} s"
    )
    return "\n".join([header, "", *lines, *(["", "missed:", *misses] if misses else [])])


def default_out(result: dict[str, Any]) -> Path:
    if result["quick"]:
        return RESULTS_DIR / "quick-latest.json"
    size = result["size"]
    day = result["started_at"][:10]
    return RESULTS_DIR / f"{day}-{size['cities']}c-{size['events_loaded']}e.json"


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
