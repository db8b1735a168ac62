"""The store the read benchmark reads from: many cities, a long log, one busy city.

`prepare` writes, into a fresh PostgreSQL schema (or a SQLite file), a synthetic
log decided in memory by the real aggregate (`bench.synth.LogBuilder`) and saved
through the application's own bulk path (`Dateline.import_cities`, many cities
per transaction): each save writes the events, their index rows and their
read-model rows in one transaction, as every append does, so the read model is
the product's own projection of the log, not rows made up by the benchmark.
Then a city of `big` events and one of `small` events (`bench.write_path_load`'s
builder) and an ANALYZE, as an operator would run after a bulk load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.synth import LogBuilder, SynthConfig
from bench.write_path_load import build_cities
from dateline.infrastructure.application import Dateline

BIG_SLUG = "reads-big"
SMALL_SLUG = "reads-small"


@dataclass
class Prepared:
    events: int = 0
    cities: int = 0
    decide_s: float = 0.0
    import_s: float = 0.0
    big_city_s: float = 0.0
    analyze_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "cities": self.cities,
            "decide_s": round(self.decide_s, 1),
            "import_s": round(self.import_s, 1),
            "import_events_per_s": round(self.events / self.import_s) if self.import_s else None,
            "big_and_small_city_s": round(self.big_city_s, 1),
            "analyze_s": round(self.analyze_s, 1),
            **self.details,
        }


def prepare(
    app: Dateline,
    cities: int,
    events: int,
    big: int,
    small: int,
    log: Callable[[str], None],
    batch_size: int = 256,
) -> Prepared:
    """Fill `app`'s (empty) store: `cities` cities and `events` events in all,
    then a `big`-event city and a `small`-event city on top."""
    done = Prepared()
    builder = LogBuilder(SynthConfig(cities=cities, events=events))
    started = time.perf_counter()
    for year, decided in builder.rounds():
        saving = time.perf_counter()
        done.decide_s += saving - started
        done.events += app.import_cities(decided, batch_size=batch_size)
        started = time.perf_counter()
        done.import_s += started - saving
        if year % 5 == 0:
            log(f"  {year}: {done.events:,} events so far (import {done.import_s:.0f} s)")
    done.cities = len(builder.plans)
    done.details["synth"] = {
        "registered": builder.stats.registered,
        "by_type": dict(builder.stats.by_type),
    }
    del builder  # the decided log: gigabytes at a million events
    start = time.perf_counter()
    build_cities(app, [BIG_SLUG], big)
    build_cities(app, [SMALL_SLUG], small)
    done.big_city_s = time.perf_counter() - start
    done.events += big + small
    done.cities += 2
    start = time.perf_counter()
    analyze(app)
    done.analyze_s = time.perf_counter() - start
    return done


def analyze(app: Dateline) -> None:
    store = app.store
    if store.kind == "sqlite":
        with app.read_model.cursor() as cursor:
            cursor.execute("ANALYZE")
        return
    import psycopg

    assert app.settings.database_url is not None
    with psycopg.connect(app.settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{app.settings.postgres_schema}"')
        conn.execute("VACUUM ANALYZE")
