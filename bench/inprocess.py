"""The in-process figures: bulk import, replay, status, map, rebuild, appends."""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.application import project_aggregate

from bench import pg
from bench.figures import Figure, judge_at_least, judge_at_most
from bench.stats import summarize, time_calls
from bench.synth import LOG_END, REPORTERS, CityPlan, LogBuilder, advance, next_fresh
from dateline.domain.city import City, city_id
from dateline.domain.control import Source
from dateline.infrastructure.application import Dateline


def fast_projector(aggregate: Any, events: Iterable[Any]) -> Any:
    """`project_aggregate` without its per-event runtime Protocol isinstance assert."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class Timers:
    """Wraps methods on an instance to add up the time spent in them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._restore: list[tuple[Any, str]] = []

    def wrap(self, owner: Any, name: str, label: str | None = None) -> None:
        original = getattr(owner, name)
        key = label or name
        self.seconds.setdefault(key, 0.0)
        self.calls.setdefault(key, 0)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - start
                self.calls[key] += 1

        setattr(owner, name, timed)
        self._restore.append((owner, name))

    def unwrap(self) -> None:
        for owner, name in reversed(self._restore):
            delattr(owner, name)
        self._restore.clear()


READ_MODEL_TABLES = (
    "dateline_control_periods",
    "dateline_event_facts",
    "dateline_rm_cities",
    "dateline_projection_tracking",
)


def has_read_model(app: Dateline) -> bool:
    return hasattr(app, "read_model")


# ------------------------------------------------------------------ bulk import
@dataclass
class LoadResult:
    events: int = 0
    cities: int = 0
    rounds: int = 0
    import_s: float = 0.0
    decide_s: float = 0.0
    verify_s: float = 0.0
    breakdown_s: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


def load_log(app: Dateline, builder: LogBuilder, batch_size: int, progress: Any) -> LoadResult:
    """Decide the synthetic log in memory and import it round by round; only the
    `import_cities` calls are timed as the import."""
    result = LoadResult()
    timers = Timers()
    timers.wrap(app, "save")
    timers.wrap(app, "take_snapshot")
    started = time.perf_counter()
    try:
        for year, cities in builder.rounds():
            decided = time.perf_counter()
            result.decide_s += decided - started
            written = app.import_cities(cities, batch_size=batch_size)
            started = time.perf_counter()
            result.import_s += started - decided
            result.events += written
            result.rounds += 1
            progress(
                f"  {year}: {written:,} events from {len(cities):,} cities "
                f"({result.events:,} so far, import {result.import_s:.1f} s)"
            )
    finally:
        timers.unwrap()
    start = time.perf_counter()
    result.cities = builder.verify()
    result.verify_s = time.perf_counter() - start
    save = timers.seconds["save"]
    snapshots = timers.seconds["take_snapshot"]
    catch_up = timers.seconds.get("catch_up", 0.0)
    result.breakdown_s = {
        "save_append_s": round(save - snapshots, 3),
        "save_snapshots_s": round(snapshots, 3),
        "read_model_catch_up_s": round(catch_up, 3),
        "other_s": round(result.import_s - save - catch_up, 3),
    }
    result.calls = dict(timers.calls)
    return result


def bulk_import_figure(url: str, schema: str, load: LoadResult) -> Figure:
    figure = Figure.of("bulk_import")
    events_data, index_data, rows = pg.dump_log(url, schema)
    copy = pg.copy_in(url, schema, events_data, index_data)
    copy_s = copy["events_s"] + copy["index_s"]
    app_rate = load.events / load.import_s
    raw_rate = rows / copy_s
    figure.unit = "events/s"
    figure.value = {
        "events_per_s": round(app_rate, 1),
        "events": load.events,
        "seconds": round(load.import_s, 2),
    }
    figure.baseline = {
        "events_per_s": round(raw_rate, 1),
        "rows": rows,
        "seconds": round(copy_s, 3),
        "events_table_s": round(copy["events_s"], 3),
        "index_table_s": round(copy["index_s"], 3),
        "events_table_only_per_s": round(rows / copy["events_s"], 1),
    }
    figure.ratio = round(app_rate / raw_rate, 4)
    judge_at_least(figure, figure.ratio, 0.5, "ratio")
    figure.details = {
        "rounds": load.rounds,
        "cities": load.cities,
        "breakdown_s": load.breakdown_s,
        "calls": load.calls,
        "decide_in_memory_s": round(load.decide_s, 2),
        "verify_s": round(load.verify_s, 2),
        "payload_bytes": {"events": len(events_data), "index": len(index_data)},
    }
    return figure


# ----------------------------------------------------------------------- replay
def replay_figures(app: Dateline, builder: LogBuilder, reps: int) -> tuple[Figure, Figure]:
    sizes = sorted(
        (plan.city.version, plan.slug) for plan in builder.plans if plan.city is not None
    )
    interval = app.settings.snapshot_interval
    snapshotted = [s for s in sizes if s[0] >= interval] or sizes[-1:]
    picks = {
        "median_city": sizes[len(sizes) // 2],
        "median_snapshotted_city": snapshotted[len(snapshotted) // 2],
        "largest_city": sizes[-1],
    }
    snap = Figure.of("replay_snapshot")
    full = Figure.of("replay_full")
    snap.unit = full.unit = "ms"
    repo, store = app.repository, app.events
    for label, (events, slug) in picks.items():
        cid = city_id(slug)
        with_snapshot = summarize(time_calls(partial(repo.get, cid), reps, warmup=3))
        fast_snapshot = summarize(
            time_calls(partial(repo.get, cid, projector_func=fast_projector), reps, warmup=3)
        )
        application = summarize(time_calls(partial(app.find_city, slug), reps, warmup=3))
        snapshots = app.snapshots
        assert snapshots is not None
        latest = list(snapshots.get(cid, desc=True, limit=1))
        tail = events - (latest[0].originator_version if latest else 0)
        full_reps = max(3, min(reps, 20_000 // max(events, 1)))

        def full_library(cid: UUID = cid) -> object:
            return project_aggregate(None, store.get(cid))

        def full_fast(cid: UUID = cid) -> object:
            return fast_projector(None, store.get(cid))

        def select_decode(cid: UUID = cid) -> object:
            return list(store.get(cid))

        full_lib = time_calls(full_library, full_reps, warmup=1)
        full_fst = time_calls(full_fast, full_reps, warmup=1)
        sel = time_calls(select_decode, full_reps)
        snap.details[label] = {
            "slug": slug,
            "events": events,
            "events_after_snapshot": tail,
            "library": with_snapshot,
            "projector_func_prototype": fast_snapshot,
            "application": application,
        }
        median_full = statistics.median(full_lib)
        full.details[label] = {
            "slug": slug,
            "events": events,
            "whole_city_ms": round(median_full * 1000, 3),
            "per_event_us": round(median_full / events * 1e6, 2),
            "select_and_decode_per_event_us": round(statistics.median(sel) / events * 1e6, 2),
            "projector_func_prototype_per_event_us": round(
                statistics.median(full_fst) / events * 1e6, 2
            ),
        }
    median = snap.details["median_snapshotted_city"]["application"]
    snap.value = {"p50_ms": median["p50_ms"], "p99_ms": median["p99_ms"]}
    judge_at_most(snap, median["p50_ms"], 1.0, "median snapshotted city p50 ms")
    largest = snap.details["largest_city"]["application"]
    judge_at_most(snap, largest["p50_ms"], 1.0, "largest city p50 ms")
    snap.details["what"] = (
        "value: Dateline.find_city (the application's own reload) for the median city "
        f"among those with at least one snapshot (>= {interval} events); `library` is "
        "repository.get with the library's default projector; median_city may have no "
        "snapshot yet"
    )
    full.value = {
        "per_event_us": full.details["median_snapshotted_city"]["per_event_us"],
        "largest_city_per_event_us": full.details["largest_city"]["per_event_us"],
    }
    full.unit = "us/event"
    return snap, full


# ----------------------------------------------------------------------- status
def status_samples(builder: LogBuilder, n: int, seed: int = 7) -> list[tuple[str, date, datetime]]:
    """(slug, as_of, known_at): as_of from 30 days before tracking to the log's
    end, known_at from registration to a little after the log's end."""
    rng = random.Random(seed)
    out = []
    end = LOG_END.timestamp()
    for _ in range(n):
        plan = rng.choice(builder.plans)
        start = plan.tracked_since - timedelta(days=30)
        as_of = start + timedelta(days=rng.randrange((LOG_END.date() - start).days + 1))
        known = rng.uniform(plan.registered_at.timestamp() - 86400, end + 86400)
        out.append((plan.slug, as_of, datetime.fromtimestamp(known, UTC)))
    return out


def status_figure(app: Dateline, builder: LogBuilder, n: int) -> Figure:
    figure = Figure.of("status_inprocess")
    figure.unit = "ms"
    samples = status_samples(builder, n)
    aggregate_samples = samples[: max(50, n // 5)]
    aggregate = _timed_each(lambda s: app.status(*s), aggregate_samples, warmup=20)
    figure.details["aggregate_path_app_status"] = {
        "what": "Dateline.status: index lookup + repository.get(version=N) + fold",
        **summarize(aggregate),
    }
    if not has_read_model(app):
        figure.status = "not measured: app.read_model has not landed"
        return figure
    read_model = app.read_model
    latencies = _timed_each(lambda s: read_model.status(*s), samples, warmup=50)
    summary = summarize(latencies)
    figure.value = {"p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"]}
    figure.details["read_model"] = summary
    judge_at_most(figure, summary["p99_ms"], 1.0, "p99 ms")
    return figure


def _timed_each(call: Callable[[Any], object], items: list[Any], warmup: int) -> list[float]:
    for item in items[:warmup]:
        call(item)
    out = []
    for item in items:
        start = time.perf_counter()
        call(item)
        out.append(time.perf_counter() - start)
    return out


# -------------------------------------------------------------------------- map
def geojson_builder() -> tuple[Callable[[list[Any]], dict[str, Any]], str]:
    try:
        from dateline.api.routers.status import feature_collection

        return feature_collection, "dateline.api.routers.status.feature_collection"
    except ImportError:
        return _feature_collection, "bench's own builder (the API's is not importable)"


def _feature_collection(views: list[Any]) -> dict[str, Any]:
    features = []
    for v in views:
        s = v.state
        features.append(
            {
                "type": "Feature",
                "id": v.city.slug,
                "geometry": {"type": "Point", "coordinates": [v.city.lon, v.city.lat]},
                "properties": {
                    "city": v.city.slug,
                    "name": v.city.name,
                    "status": s.status.value,
                    "controller": s.controller,
                    "contested_by": s.contested_by,
                    "since": s.since.isoformat() if s.since else None,
                    "event_id": s.event_id,
                    "version": v.version,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def map_figure(app: Dateline, reps: int) -> Figure:
    figure = Figure.of("map_geojson")
    figure.unit = "ms"
    if not has_read_model(app):
        figure.status = "not measured: app.read_model has not landed"
        return figure
    build, builder_name = geojson_builder()
    rng = random.Random(11)
    query_s, build_s, encode_s, totals = [], [], [], []
    size = 0
    cities = 0
    for i in range(reps + 1):
        as_of = date(2010, 1, 1) + timedelta(days=rng.randrange(16 * 365))
        known_at = datetime.combine(as_of, datetime.max.time(), UTC) + timedelta(days=30)
        t0 = time.perf_counter()
        views = app.read_model.statuses(as_of, known_at)
        t1 = time.perf_counter()
        collection = build(views)
        t2 = time.perf_counter()
        body = json.dumps(collection, separators=(",", ":"))
        t3 = time.perf_counter()
        if i == 0:
            continue  # warm-up
        query_s.append(t1 - t0)
        build_s.append(t2 - t1)
        encode_s.append(t3 - t2)
        totals.append(t3 - t0)
        size, cities = len(body), len(views)
    total = summarize(totals)
    figure.value = {"p50_ms": total["p50_ms"], "max_ms": total["max_ms"], "cities": cities}
    figure.details = {
        "geojson_builder": builder_name,
        "query_ms": summarize(query_s),
        "build_ms": summarize(build_s),
        "encode_ms": summarize(encode_s),
        "total_ms": total,
        "body_bytes": size,
    }
    target = 100.0 * max(cities, 1) / 10_000  # the target scales with the city count
    figure.details["target_ms_at_this_size"] = round(target, 2)
    judge_at_most(figure, total["p50_ms"], target, "p50 ms")
    return figure


# ---------------------------------------------------------------------- rebuild
def rebuild_figure(app: Dateline, url: str, schema: str) -> Figure:
    figure = Figure.of("projection_rebuild")
    figure.unit = "events/s"
    start = time.perf_counter()
    applied = app.projection.rebuild()
    seconds = time.perf_counter() - start
    page = _read_model_batch_size()
    rows, raw_s = pg.raw_read(url, schema, page)
    stream_rows, stream_s = pg.raw_stream(url, schema)
    app_rate, raw_rate = applied / seconds, rows / raw_s
    figure.value = {
        "events_per_s": round(app_rate, 1),
        "events": applied,
        "seconds": round(seconds, 2),
    }
    figure.baseline = {
        "events_per_s": round(raw_rate, 1),
        "rows": rows,
        "seconds": round(raw_s, 3),
        "page_size": page,
        "one_stream_events_per_s": round(stream_rows / stream_s, 1),
    }
    figure.ratio = round(app_rate / raw_rate, 4)
    judge_at_least(figure, figure.ratio, 0.5, "ratio")
    return figure


def _read_model_batch_size() -> int:
    from dateline.infrastructure.read_model import rebuild

    return rebuild.FETCH_SIZE  # the rows the rebuild fetches at a time


# ---------------------------------------------------------------------- appends
@dataclass
class Writer:
    """A reporter who owns some cities and knows their latest state."""

    plans: list[CityPlan]
    rng: random.Random
    sequence: int = 0

    def next_report(self, today: date) -> tuple[CityPlan, dict[str, Any]]:
        plan = self.plans[self.sequence % len(self.plans)]
        self.sequence += 1
        assert plan.frontier is not None
        kind, actor = next_fresh(self.rng, plan.frontier, plan.actors)
        report = {
            "event_type": kind,
            "occurred_on": today,
            "actor": actor,
            "source": Source(
                "bench wire", f"https://news.example/live/{plan.slug}/{self.sequence}"
            ),
            "report_id": f"live-{self.rng.getrandbits(64):016x}",
        }
        return plan, report

    def accepted(self, plan: CityPlan, report: dict[str, Any]) -> None:
        assert plan.frontier is not None
        advance(plan.frontier, report["event_type"], report["actor"])


def make_writers(
    builder: LogBuilder, writers: int, per_writer: int, seed: int, *, hand_off: bool = False
) -> list[Writer]:
    """Disjoint sets of cities, one per writer. In-process writers keep each
    city's frontier in step with the log; `hand_off` marks the cities as given
    to another process (the HTTP load), whose frontier this process loses."""
    rng = random.Random(seed)
    free = [p for p in builder.plans if p.city is not None and not p.taken]
    chosen = rng.sample(free, min(len(free), writers * per_writer))
    if len(chosen) < writers:
        raise ValueError(f"only {len(chosen)} cities left for {writers} writers")
    if hand_off:
        for plan in chosen:
            plan.taken = True
    return [Writer(chosen[i::writers], random.Random(seed * 1000 + i)) for i in range(writers)]


def run_writers(
    app: Dateline, writers: list[Writer], seconds: float
) -> tuple[int, int, float, list[float]]:
    """Each writer thread reports to its own cities until the deadline:
    (appended, errors, elapsed, latencies)."""
    today = datetime.now(UTC).date()
    latencies: list[list[float]] = [[] for _ in writers]
    errors = [0] * len(writers)
    barrier = threading.Barrier(len(writers) + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        writer, own = writers[i], latencies[i]
        barrier.wait()
        while True:
            start = time.perf_counter()
            if start >= deadline[0]:
                return
            plan, report = writer.next_report(today)
            kind = report.pop("event_type")
            try:
                app.report(plan.slug, kind, reported_by=REPORTERS[i % len(REPORTERS)], **report)
            except Exception:
                errors[i] += 1
                plan.frontier = None
                _refresh(app, plan)
                continue
            own.append(time.perf_counter() - start)
            report["event_type"] = kind
            writer.accepted(plan, report)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(writers))]
    for t in threads:
        t.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = [x for own in latencies for x in own]
    return len(flat), sum(errors), elapsed, flat


def _refresh(app: Dateline, plan: CityPlan) -> None:
    from bench.synth import frontier_of

    city = app.find_city(plan.slug)
    assert isinstance(city, City)
    plan.frontier = frontier_of(city)


def append_figure(
    app: Dateline,
    builder: LogBuilder,
    url: str,
    schema: str,
    writers: int,
    seconds: float,
    per_writer: int = 8,
) -> Figure:
    figure = Figure.of("append_inprocess")
    figure.unit = "events/s"
    topic, state = pg.sample_event(url, schema)
    pg.truncate_raw(url, schema)
    raw_rows, raw_s, raw_lat = pg.raw_insert_writers(url, schema, topic, state, writers, seconds)
    team = make_writers(builder, writers, per_writer, seed=21)
    appended, errors, elapsed, latencies = run_writers(app, team, seconds)
    app_rate, raw_rate = appended / elapsed, raw_rows / raw_s
    figure.value = {
        "events_per_s": round(app_rate, 1),
        **{k: v for k, v in summarize(latencies).items() if k in ("p50_ms", "p99_ms")},
    }
    figure.baseline = {
        "rows_per_s": round(raw_rate, 1),
        **{k: v for k, v in summarize(raw_lat).items() if k in ("p50_ms", "p99_ms")},
        "state_bytes": len(state),
    }
    figure.ratio = round(app_rate / raw_rate, 4)
    judge_at_least(figure, figure.ratio, 0.5, "ratio")
    figure.details = {
        "writers": writers,
        "cities_per_writer": per_writer,
        "seconds": round(elapsed, 2),
        "appended": appended,
        "errors": errors,
        "latency": summarize(latencies),
        "baseline_latency": summarize(raw_lat),
        "pool": {
            "size": app.settings.postgres_pool_size,
            "max_overflow": app.settings.postgres_max_overflow,
        },
    }
    return figure
