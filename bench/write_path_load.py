"""In-process loads of the write-path benchmark (issue 7).

* `Dateline.report` from N threads, each on its own cities, one event per command;
* the baseline: a plain eventsourcing application with the library's defaults
  (one trivial aggregate class, get + trigger + save per command);
* single-writer appends to a big and a small city, interleaved.

Cities are built fast: decided in memory by the real aggregate (`City.report`)
and saved through `Dateline.import_cities`, which writes their events, index
rows and read-model rows as any append does.
"""

from __future__ import annotations

import cProfile
import resource
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.inprocess import Timers
from bench.stats import summarize
from dateline.domain.city import City, city_id
from dateline.domain.control import EventType, Source
from dateline.infrastructure.application import Dateline, utc_now
from dateline.infrastructure.settings import StoreConfig

CONTROLLER = "Government"
CHALLENGER = "Rebels"
TRACKED_SINCE = date(1900, 1, 1)  # room for ~40,000 daily events before today
SOURCE = Source("bench wire", "https://news.example/write-path")
REPORTER = "reporter:bench"


# ------------------------------------------------------------------ cities
@dataclass
class Track:
    """One city a reporter writes to: Contested by the challenger, then Retaken by
    the controller, and again, one day apart (always a legal next event)."""

    slug: str
    day: int = 0  # days after TRACKED_SINCE of the latest event
    contested: bool = False
    alive: bool = True

    def next_report(self) -> tuple[EventType, str, date]:
        kind, actor = (
            (EventType.RETAKEN, CONTROLLER) if self.contested else (EventType.CONTESTED, CHALLENGER)
        )
        return kind, actor, TRACKED_SINCE + timedelta(days=self.day + 1)

    def advance(self) -> None:
        self.day += 1
        self.contested = not self.contested

    @property
    def report_id(self) -> str:
        return f"wp-{self.slug}-{self.day + 1}"


def register_in_memory(slug: str) -> City:
    return City.register(
        slug=slug,
        name=slug.replace("-", " ").title(),
        province="Bench",
        country="Benchland",
        lat=10.0,
        lon=20.0,
        population=1000,
        initial_controller=CONTROLLER,
        tracked_since=TRACKED_SINCE,
        recorded_at=utc_now(),
    )


def report(app: Dateline, track: Track) -> None:
    kind, actor, on = track.next_report()
    app.report(
        track.slug,
        kind,
        occurred_on=on,
        actor=actor,
        source=SOURCE,
        reported_by=REPORTER,
        report_id=track.report_id,
    )
    track.advance()


def build_cities(app: Dateline, slugs: list[str], events_each: int) -> list[Track]:
    """Cities of `events_each` events (registration included), decided in memory
    and imported through the application."""
    tracks, cities = [], []
    for slug in slugs:
        city, track = register_in_memory(slug), Track(slug)
        for _ in range(events_each - 1):
            kind, actor, on = track.next_report()
            city.report(
                kind,
                occurred_on=on,
                actor=actor,
                source=SOURCE,
                reported_by=REPORTER,
                recorded_at=utc_now(),
                report_id=track.report_id,
            )
            track.advance()
        cities.append(city)
        tracks.append(track)
    app.import_cities(cities, batch_size=64)
    return tracks


# ------------------------------------------------------------------ loads
@dataclass
class LoadResult:
    appended: int
    errors: int
    elapsed_s: float
    latencies: list[float]
    first_errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        lat = summarize(self.latencies)
        return {
            "events_per_s": round(self.appended / self.elapsed_s, 1) if self.elapsed_s else None,
            "p50_ms": lat["p50_ms"],
            "p99_ms": lat["p99_ms"],
            "appended": self.appended,
            "errors": self.errors,
            "first_errors": self.first_errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "latency": lat,
            **self.cpu,
            **self.extra,
        }


def run_threads(threads: int, seconds: float, step: Callable[[int], None]) -> LoadResult:
    """`threads` threads calling `step(i)` until the deadline; a step that raises
    counts as an error (the first few are kept)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    first_errors: list[str] = []
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        own = latencies[i]
        barrier.wait()
        while True:
            start = time.perf_counter()
            if start >= deadline[0]:
                return
            try:
                step(i)
            except Exception as error:
                errors[i] += 1
                if len(first_errors) < 5:
                    first_errors.append(f"{type(error).__name__}: {error}"[:300])
                if errors[i] > 1000:
                    return
                continue
            own.append(time.perf_counter() - start)

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    cpu = process_cpu_s()
    started = time.perf_counter()
    deadline[0] = started + seconds
    barrier.wait()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = process_cpu_s() - cpu
    flat = [x for own in latencies for x in own]
    result = LoadResult(len(flat), sum(errors), elapsed, flat, first_errors)
    result.cpu = {
        # CPU of this process only (PostgreSQL is another): GIL-bound code stays near 1 core.
        "process_cpu_cores": round(cpu / elapsed, 3) if elapsed else None,
        "process_cpu_ms_per_event": round(1000 * cpu / len(flat), 3) if flat else None,
    }
    return result


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class DatelineLoad:
    """N reporter threads, each on its own cities, through `Dateline.report`."""

    def __init__(self, app: Dateline, threads: int, per_thread: int, prefix: str) -> None:
        self.app = app
        slugs = [f"{prefix}-{i}-{k}" for i in range(threads) for k in range(per_thread)]
        tracks = build_cities(app, slugs, 1)
        self.teams = [tracks[i * per_thread : (i + 1) * per_thread] for i in range(threads)]
        self.turns = [0] * threads

    def step(self, i: int) -> None:
        team = self.teams[i]
        self.turns[i] += 1
        track = team[self.turns[i] % len(team)]
        if not track.alive:
            live = [t for t in team if t.alive]
            if not live:
                raise RuntimeError("every city of this reporter failed")
            track = live[self.turns[i] % len(live)]
        try:
            report(self.app, track)
        except Exception:
            track.alive = False  # its state is unknown now: leave it
            raise

    def run(self, seconds: float) -> LoadResult:
        writer = self.app.writer
        batches, commands = writer.batches, writer.commands
        busy = [0.0, 0.0]  # one wrapper call per batch: cheap enough to keep
        shadowed = writer.__dict__.get("_commit")  # a profiler's wrapper, if any
        inner = writer._commit

        def timed(batch: Any) -> None:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                inner(batch)
            finally:
                busy[0] += time.perf_counter() - start
                busy[1] += time.thread_time() - cpu  # the writer thread's own CPU

        writer._commit = timed  # type: ignore[method-assign]
        try:
            result = run_threads(len(self.teams), seconds, self.step)
        finally:
            if shadowed is None:
                del writer._commit
            else:
                writer._commit = shadowed  # type: ignore[method-assign]
        done_batches = writer.batches - batches
        done = writer.commands - commands
        result.extra = {
            "transactions": done_batches,
            "commands_per_transaction": round(done / done_batches, 2) if done_batches else None,
            # The writer thread's share of wall time inside a batch (the rest: waiting
            # for callers to submit their next command).
            "writer_busy_share": round(busy[0] / result.elapsed_s, 3),
            # Of that, the share the writer thread ran on a CPU (the rest: waiting for
            # PostgreSQL, for the GIL, or for a core), and its CPU per command.
            "writer_cpu_share": round(busy[1] / result.elapsed_s, 3),
            "writer_cpu_ms_per_command": round(1000 * busy[1] / done, 3) if done else None,
            "city_sizes_max": max(t.day + 1 for team in self.teams for t in team),
        }
        return result


# ------------------------------------------------- the library's own baseline
class Tally(Aggregate):
    """The trivial aggregate: one event, one counter."""

    def __init__(self) -> None:
        self.count = 0

    @event("Counted")
    def count_one(self) -> None:
        self.count += 1


class PlainApplication(Application[UUID]):
    """An eventsourcing 9.5 application as the library's docs set one up."""

    name = "BenchPlain"


def plain_env(url: str, schema: str) -> dict[str, str]:
    """The library's defaults: its own PostgreSQL module and tables (CREATE_TABLE),
    no snapshots, no aggregate cache, its default pool."""
    store = StoreConfig.from_url(url, schema)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": store.dbname,
        "POSTGRES_HOST": store.host,
        "POSTGRES_PORT": str(store.port),
        "POSTGRES_USER": store.user,
        "POSTGRES_PASSWORD": store.password,
        "POSTGRES_SCHEMA": schema,
        "CREATE_TABLE": "true",
    }


class PlainLoad:
    """N threads, each on its own Tally: get by id, trigger one event, save.
    Without a cache or snapshots every get replays the whole aggregate, so each
    thread starts a new Tally every `rollover` events (creating it is a command
    too): the baseline does not slow down as its aggregates grow."""

    def __init__(self, app: PlainApplication, threads: int, rollover: int) -> None:
        self.app = app
        self.rollover = rollover
        self.current: list[UUID | None] = [None] * threads
        self.counts = [0] * threads

    def step(self, i: int) -> None:
        tally_id = self.current[i]
        if tally_id is None or self.counts[i] >= self.rollover:
            tally = Tally()
            self.app.save(tally)
            self.current[i], self.counts[i] = tally.id, 1
            return
        found = self.app.repository.get(tally_id)
        assert isinstance(found, Tally)
        found.count_one()
        self.app.save(found)
        self.counts[i] += 1

    def run(self, seconds: float) -> LoadResult:
        result = run_threads(len(self.current), seconds, self.step)
        result.extra = {"rollover_events": self.rollover}
        return result


# ---------------------------------------------------------- a city's size
def city_size_samples(
    app: Dateline, big_events: int, small_events: int, samples: int, cold: int, prefix: str
) -> dict[str, Any]:
    """Appends by a single writer to a city of `big_events` and to cities of
    `small_events` (a fresh one every 5 appends, so they stay small),
    interleaved, the order flipped every pair; plus `cold` appends of each right
    after the writer forgot the city (a load from the store)."""
    (big,) = build_cities(app, [f"{prefix}-big"], big_events)
    smalls = build_cities(
        app, [f"{prefix}-small-{k}" for k in range(samples // 5 + 2)], small_events
    )
    timed_big: list[float] = []
    timed_small: list[float] = []
    cold_big: list[float] = []
    cold_small: list[float] = []

    def timed(track: Track, into: list[float], forget: bool = False) -> None:
        if forget:
            app.writer.forget(city_id(track.slug))
        start = time.perf_counter()
        report(app, track)
        into.append(time.perf_counter() - start)

    spare = smalls.pop()
    for _ in range(cold):
        timed(big, cold_big, forget=True)
        timed(spare, cold_small, forget=True)
    for track in (big, *smalls):  # into the writer's cache, as a busy city is
        report(app, track)
    for n in range(samples):
        small = smalls[n // 5]
        if n % 2:
            timed(big, timed_big)
            timed(small, timed_small)
        else:
            timed(small, timed_small)
            timed(big, timed_big)
    return {
        "big": summarize(timed_big),
        "small": summarize(timed_small),
        "big_cold": summarize(cold_big),
        "small_cold": summarize(cold_small),
        "big_events_at_end": big.day + 1,
        "small_events_range": [small_events + 1, small_events + 6],
    }


# -------------------------------------------------------------- profiling
class WriterProfile:
    """cProfile of the writer thread (its batches only), and the share of its
    wall time spent deciding and saving."""

    def __init__(self, app: Dateline) -> None:
        self.app = app
        self.profile = cProfile.Profile()
        self.timers = Timers()
        self._depth = 0

    def __enter__(self) -> WriterProfile:
        writer = self.app.writer
        self.timers.wrap(writer, "_decide", "writer._decide")
        self.timers.wrap(self.app, "save_decided", "app.save_decided (one transaction)")
        self.timers.wrap(self.app, "_record", "app._record (rows + recorder)")
        self.timers.wrap(self.app, "_take_snapshots", "app._take_snapshots")
        self.timers.wrap(self.app, "load_city", "app.load_city (cache miss)")
        self.timers.wrap(writer, "_commit", "writer._commit (whole batch)")
        timed = writer._commit

        def commit(batch: Any) -> None:
            self._depth += 1
            if self._depth == 1:
                self.profile.enable()
            try:
                timed(batch)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.profile.disable()

        writer._commit = commit  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.timers.unwrap()  # drops the profiling wrapper with the timed one

    def top(self, n: int = 25) -> dict[str, Any]:
        import pstats

        stats = pstats.Stats(self.profile)
        raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
        total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values())
        rows = []
        for (filename, line, name), (_cc, calls, tt, ct, _callers) in raw.items():
            where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
            rows.append(
                {
                    "function": f"{where}:{line}({name})",
                    "calls": calls,
                    "tottime_s": round(tt, 4),
                    "cumtime_s": round(ct, 4),
                    "cum_share_of_writer": round(ct / total, 3) if total else None,
                }
            )
        by_cum = sorted(rows, key=lambda r: -r["cumtime_s"])[:n]
        by_tot = sorted(rows, key=lambda r: -r["tottime_s"])[:n]
        return {
            "writer_cpu_profiled_s": round(total, 3),
            "by_cumtime": by_cum,
            "by_tottime": by_tot,
        }


def profile_dateline(load: DatelineLoad, seconds: float) -> dict[str, Any]:
    with WriterProfile(load.app) as profiled:
        result = load.run(seconds)
    elapsed = result.elapsed_s
    return {
        "load": result.summary(),
        "writer_wall_share": {
            k: round(v / elapsed, 3) for k, v in profiled.timers.seconds.items() if elapsed
        },
        "writer_calls": dict(profiled.timers.calls),
        "cprofile": profiled.top(),
        "note": "cProfile slows the profiled thread; shares, not rates, are the point",
    }


def new_schema_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"
