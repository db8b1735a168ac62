"""Design changes prototyped here, measured against the code as it is.

They patch one `Dateline` instance (instance attributes only) and undo the
patch afterwards; nothing here is used by the application. Each names the file
the real change belongs in (docs/performance.md gives the exact change):

* `GroupCommit` (infrastructure/application.py): concurrent `save()` calls are
  queued and written by one committer thread in one transaction; a batch that
  hits a conflict is retried call by call, so each caller still gets its own
  IntegrityError and the application's retry loop is unchanged.
* `CoalescedCatchUp` (infrastructure/application.py, read_model.py): a writer
  whose events an earlier catch-up already covered returns at once instead of
  queueing for the process-wide catch-up lock to run an empty transaction.
* `fast_projector` (infrastructure/application.py): `repository.get(...,
  projector_func=...)` without the library's per-event runtime Protocol assert.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError

from bench.figures import Figure
from bench.inprocess import (
    fast_projector,
    has_read_model,
    make_writers,
    run_writers,
    status_samples,
)
from bench.stats import summarize
from bench.synth import LogBuilder
from domain.city import City, event_id
from domain.control import (
    ControlInterval,
    ControlState,
    EventType,
    Status,
    TimelineEntry,
    _next_state,
)
from infrastructure.settings import Settings

if TYPE_CHECKING:
    from bench.run import Run
    from infrastructure.application import Dateline

_Item = tuple[tuple[Any, ...], "Future[Any]"]


class GroupCommit:
    """One committer thread writes every queued save() of a moment in one transaction."""

    def __init__(self, app: Dateline, max_batch: int = 64) -> None:
        self.app = app
        self.inner = app.save  # the class's bound method (no instance patch yet)
        self.max_batch = max_batch
        self.queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.batch_sizes: list[int] = []
        self.fallbacks = 0
        self.thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self.thread.start()

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        if kwargs or threading.current_thread() is self.thread:
            return self.inner(*objs, **kwargs)
        future: Future[Any] = Future()
        self.queue.put((objs, future))
        return future.result()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.queue.put(None)
                    break
                batch.append(more)
            self.batch_sizes.append(len(batch))
            self._commit(batch)

    def _commit(self, batch: list[_Item]) -> None:
        aggregates = [obj for objs, _ in batch for obj in objs]
        pending = {id(a): list(a._pending_events) for a in aggregates}
        try:
            recordings = self.inner(*aggregates)
        except IntegrityError:
            # Someone else's write conflicts with one of ours: give each caller
            # its own outcome, as if it had saved alone.
            self.fallbacks += 1
            for a in aggregates:
                a._pending_events[:] = pending[id(a)]
            for objs, future in batch:
                try:
                    future.set_result(self.inner(*objs))
                except BaseException as error:
                    future.set_exception(error)
            return
        except BaseException as error:
            for _, future in batch:
                future.set_exception(error)
            return
        mine: dict[Any, list[Any]] = defaultdict(list)
        for recording in recordings:
            mine[recording.domain_event.originator_id].append(recording)
        for objs, future in batch:
            future.set_result([r for obj in objs for r in mine.get(obj.id, [])])


class CoalescedCatchUp:
    """catch_up() that returns at once when an earlier catch-up covered our events."""

    def __init__(self, app: Dateline) -> None:
        self.app = app
        self.inner = app.read_model.catch_up
        self.lock = threading.Lock()
        self.covered = 0
        self.local = threading.local()
        self.skipped = 0
        self.ran = 0

    def note(self, recordings: Any) -> None:
        if recordings:
            self.local.want = recordings[-1].notification.id

    def __call__(self) -> int:
        want = getattr(self.local, "want", None)
        if want is not None and self.covered >= want:
            self.skipped += 1
            return 0
        with self.lock:
            if want is not None and self.covered >= want:
                self.skipped += 1
                return 0
            top = self.app.recorder.max_notification_id() or 0
            applied = self.inner()
            self.covered = max(self.covered, top)
            self.ran += 1
            return applied


class Patched:
    """Applies a combination of the prototypes to one app; `undo()` restores it."""

    def __init__(
        self, app: Dateline, *, group: bool, coalesce: bool, defer_catch_up: bool = False
    ) -> None:
        self.app = app
        self.group = GroupCommit(app) if group else None
        self.coalesce = CoalescedCatchUp(app) if coalesce and has_read_model(app) else None
        inner_save = self.group.save if self.group else app.save

        def save(*objs: Any, **kwargs: Any) -> Any:
            recordings = inner_save(*objs, **kwargs)
            if self.coalesce is not None:
                self.coalesce.note(recordings)
            return recordings

        app.save = save  # type: ignore[method-assign]
        if has_read_model(app):
            if defer_catch_up:
                app.read_model.catch_up = lambda: 0
            elif self.coalesce is not None:
                app.read_model.catch_up = self.coalesce

    def undo(self) -> dict[str, Any]:
        del self.app.save
        if has_read_model(self.app) and "catch_up" in vars(self.app.read_model):
            del self.app.read_model.catch_up
        stats: dict[str, Any] = {}
        if self.group is not None:
            self.group.close()
            sizes = self.group.batch_sizes
            stats["group_commits"] = len(sizes)
            stats["mean_batch"] = round(sum(sizes) / len(sizes), 2) if sizes else None
            stats["conflict_fallbacks"] = self.group.fallbacks
        if self.coalesce is not None:
            stats["catch_ups_run"] = self.coalesce.ran
            stats["catch_ups_skipped"] = self.coalesce.skipped
        return stats


VARIANTS: dict[str, dict[str, bool]] = {
    "as_is": {"group": False, "coalesce": False},
    "coalesced_catch_up": {"group": False, "coalesce": True},
    "group_commit": {"group": True, "coalesce": False},
    "group_commit_and_coalesced_catch_up": {"group": True, "coalesce": True},
    "group_commit_catch_up_off_write_path": {
        "group": True,
        "coalesce": False,
        "defer_catch_up": True,
    },
}


def append_variants(
    app: Dateline, builder: LogBuilder, writers: int, seconds: float
) -> dict[str, Any]:
    """Each variant twice, interleaved (A B C D E A B C D E): the machine is shared
    and drifts; each round's numbers are kept and the headline is their mean."""
    team = make_writers(builder, writers, 8, seed=55)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for _ in range(2):
        for name, result in _append_round(app, team, seconds).items():
            rounds[name].append(result)
    out: dict[str, Any] = {}
    for name, results in rounds.items():
        out[name] = {
            "events_per_s": round(sum(r["events_per_s"] for r in results) / len(results), 1),
            "p99_ms": round(sum(r["p99_ms"] for r in results) / len(results), 2),
            "rounds": results,
        }
    return out


def _append_round(app: Dateline, team: list[Any], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, options in VARIANTS.items():
        patched = Patched(app, **options)
        try:
            appended, errors, elapsed, latencies = run_writers(app, team, seconds)
        finally:
            stats = patched.undo()
        if options.get("defer_catch_up") and has_read_model(app):
            start = time.perf_counter()
            app.read_model.catch_up()
            stats["deferred_catch_up_s"] = round(time.perf_counter() - start, 3)
        lat = summarize(latencies)
        out[name] = {
            "events_per_s": round(appended / elapsed, 1),
            "p50_ms": lat["p50_ms"],
            "p99_ms": lat["p99_ms"],
            "errors": errors,
            **stats,
        }
    return out


def status_aggregate_fast(app: Dateline, builder: LogBuilder, n: int) -> dict[str, Any]:
    """Dateline.status (aggregate path) with and without the projector_func change."""
    samples = status_samples(builder, n, seed=99)
    out = {}
    for name, projector in (("library", None), ("projector_func", fast_projector)):
        if projector is not None:
            original = app.repository.get

            def get(*args: Any, _orig: Any = original, **kwargs: Any) -> Any:
                kwargs.setdefault("projector_func", fast_projector)
                return _orig(*args, **kwargs)

            app.repository.get = get  # type: ignore[method-assign]
        try:
            lat = []
            for sample in samples:
                start = time.perf_counter()
                app.status(*sample)
                lat.append(time.perf_counter() - start)
        finally:
            if projector is not None:
                del app.repository.get
        out[name] = summarize(lat)
    return out


SERVER_LIB = Path.home() / ".cache" / "dateline-bench" / "serverlib"


def ensure_server_lib() -> Path | None:
    """httptools + uvloop (what `uvicorn[standard]` adds) in a side directory, so
    only the prototype servers see them; None if pip cannot install them."""
    if not (SERVER_LIB / "uvloop").exists():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(SERVER_LIB),
             "httptools", "uvloop"],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            return None
    return SERVER_LIB


def uvicorn_command(workers: int, fast: bool) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            "--workers", str(workers),
            "--http", "httptools" if fast else "h11", "--loop", "uvloop" if fast else "asyncio",
        ]  # fmt: skip

    return command


def http_variants(
    settings: Settings, builder: LogBuilder, threads: int, seconds: float
) -> dict[str, Any]:
    """The same status and append load against differently served copies of the API."""
    from bench import http

    if http.api_missing():
        return {"skipped": http.api_missing()}
    lib = ensure_server_lib()
    variants: list[tuple[str, Callable[[int], list[str]], list[Path]]] = [
        ("dateline_serve_as_is", http.serve_command, []),
        ("uvicorn_1_worker_no_access_log", uvicorn_command(1, fast=False), []),
    ]
    if lib is not None:
        variants += [
            ("uvicorn_1_worker_httptools_uvloop_no_access_log", uvicorn_command(1, True), [lib]),
            ("uvicorn_2_workers_httptools_uvloop_no_access_log", uvicorn_command(2, True), [lib]),
        ]
    token = http.create_token(settings)
    paths = http.status_paths(builder, 2000, seed=17)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dateline-bench-") as tmp:
        for name, command, extra in variants:
            with http.server(settings, Path(tmp), command, extra) as base:
                job = {"base": base, "threads": threads, "max_requests": 1_000_000}
                http.loadgen({**job, "mode": "status", "paths": paths, "seconds": 1.0})
                reads = http.loadgen({**job, "mode": "status", "paths": paths, "seconds": seconds})
                result: dict[str, Any] = {
                    "status_requests_per_s": reads["ok_per_s"],
                    "status_p50_ms": reads["latency"]["p50_ms"],
                    "status_p99_ms": reads["latency"]["p99_ms"],
                }
                try:
                    team = make_writers(builder, threads, 8, seed=77, hand_off=True)
                except ValueError as error:
                    result["append"] = f"skipped: {error}"
                else:
                    writes = http.loadgen(
                        {
                            **job,
                            "mode": "append",
                            "writers": http.writer_payload(team),
                            "token": token,
                            "seconds": seconds,
                        }
                    )
                    result |= {
                        "append_events_per_s": writes["ok_per_s"],
                        "append_p50_ms": writes["latency"]["p50_ms"],
                        "append_p99_ms": writes["latency"]["p99_ms"],
                        "append_codes": writes["codes"],
                    }
                out[name] = result
    return out


PROTOTYPES = ("appends", "rebuild", "map", "status", "http")


def run_all(app: Dateline, builder: LogBuilder, run: Run, settings: Settings) -> dict[str, Any]:
    results: dict[str, Any] = {}
    log = run.log

    def attempt(name: str, what: str, action: Callable[[], Any]) -> None:
        log(f"  {what}")
        try:
            results[name] = action()
        except Exception as error:  # a prototype failing must not lose the run
            results[name] = {"failed": f"{type(error).__name__}: {str(error)[:300]}"}

    chosen = set(PROTOTYPES if run.args.prototypes == "all" else run.args.prototypes.split(","))
    unknown = chosen - set(PROTOTYPES)
    if unknown:
        raise ValueError(f"unknown prototypes {sorted(unknown)}: choose from {PROTOTYPES}")
    if "appends" in chosen:
        attempt(
            "append_inprocess_variants",
            "appends: group commit / coalesced catch-up",
            lambda: append_variants(app, builder, run.args.writers, run.seconds),
        )
    if "rebuild" in chosen:
        attempt(
            "projection_rebuild_variants",
            "read model: rebuild with a city cache / incremental intervals",
            lambda: rebuild_variants(app),
        )
    if "map" in chosen:
        attempt(
            "map_geojson_in_sql", "map: GeoJSON built by PostgreSQL", lambda: map_in_sql(app, 5)
        )
    if "status" in chosen:
        attempt(
            "status_aggregate_projector_func",
            "status: projector_func on the aggregate path",
            lambda: status_aggregate_fast(app, builder, min(run.samples, 1000)),
        )
    if "http" in chosen and not run.args.no_http:
        attempt(
            "http_server_variants",
            "http: server variants",
            lambda: http_variants(settings, builder, run.args.writers, run.seconds),
        )
    figure = run.figures.get("replay_snapshot")
    if isinstance(figure, Figure) and figure.details:
        results["replay_projector_func"] = {
            label: {
                "library_p50_ms": d["library"]["p50_ms"],
                "projector_func_p50_ms": d["projector_func_prototype"]["p50_ms"],
            }
            for label, d in figure.details.items()
            if isinstance(d, dict) and "library" in d
        }
    return results


# ------------------------------------------------------------ read model
class IncrementalIntervals:
    """`City.intervals()` memoised per aggregate object and extended by one fold
    step when the only change is a new control event that sorts last in world
    order (the common fresh report); anything else (a backdated report, a
    retraction) folds the whole timeline again, exactly as the domain does."""

    def __init__(self) -> None:
        self.memo: dict[int, tuple[Any, ...]] = {}
        self.steps = 0
        self.full = 0
        self.original = City.intervals

    def install(self) -> None:
        prototype = self

        def intervals(city: City) -> list[ControlInterval]:
            return prototype.intervals(city)

        City.intervals = intervals  # type: ignore[method-assign]

    def uninstall(self) -> None:
        City.intervals = self.original  # type: ignore[method-assign]
        self.memo.clear()

    def intervals(self, city: City) -> list[ControlInterval]:
        timeline = city.timeline
        memo = self.memo.get(id(city))
        if memo is not None and memo[0] is city and memo[3] == len(city.retractions):
            _, size, version, _, state, holders, result = memo
            if size == len(timeline) and version == city.version:
                return list(result)
            last = timeline[-1] if timeline else None
            if size + 1 == len(timeline) and last is not None and last[1] == city.version:
                on, v, kind, actor = last
                entry = TimelineEntry(on, v, EventType(kind), actor, event_id(city.slug, v))
                new = _next_state(city.name, state, holders, entry, None)
                result = list(result)
                if new != state:
                    state, holders = new, set(holders)
                    if state.controller is not None:
                        holders.add(state.controller)
                    tail = result[-1]
                    if tail.start == on:
                        result[-1] = ControlInterval(tail.start, None, state)
                    else:
                        result[-1] = ControlInterval(tail.start, on, tail.state)
                        result.append(ControlInterval(on, None, state))
                self.steps += 1
                self._keep(city, state, holders, result)
                return list(result)
        self.full += 1
        result, state, holders = fold_with_holders(city)
        self._keep(city, state, holders, result)
        return list(result)

    def _keep(
        self, city: City, state: ControlState, holders: set[str], result: list[ControlInterval]
    ) -> None:
        self.memo[id(city)] = (
            city, len(city.timeline), city.version, len(city.retractions), state, holders, result,
        )  # fmt: skip


def fold_with_holders(city: City) -> tuple[list[ControlInterval], ControlState, set[str]]:
    """domain.control.fold, also returning the final state and the set of holders."""
    state = ControlState(
        Status.HELD, city.initial_controller, None, city.tracked_since, event_id(city.slug, 1)
    )
    holders = {city.initial_controller}
    intervals = [ControlInterval(city.tracked_since, None, state)]
    for on, v, kind, actor in city.timeline:
        entry = TimelineEntry(on, v, EventType(kind), actor, event_id(city.slug, v))
        new = _next_state(city.name, state, holders, entry, None)
        if new == state:
            continue
        state = new
        if state.controller is not None:
            holders.add(state.controller)
        last = intervals[-1]
        if last.start == on:
            intervals[-1] = ControlInterval(last.start, None, state)
        else:
            intervals[-1] = ControlInterval(last.start, on, last.state)
            intervals.append(ControlInterval(on, None, state))
    return intervals, state, holders


class CityCache:
    """repository.get(city, version=v) answered from the aggregate a previous
    batch of the same rebuild left at version v (the projection mutates it in place)."""

    def __init__(self, app: Dateline) -> None:
        self.app = app
        self.original = app.repository.get
        self.cities: dict[Any, Any] = {}
        self.hits = 0
        self.misses = 0

    def install(self) -> None:
        def get(aggregate_id: Any, *, version: int | None = None, **kwargs: Any) -> Any:
            city = self.cities.get(aggregate_id)
            if version is not None and city is not None and city.version == version:
                self.hits += 1
                return city
            self.misses += 1
            city = self.original(aggregate_id, version=version, **kwargs)
            if version is not None:
                self.cities[aggregate_id] = city
            return city

        self.app.repository.get = get  # type: ignore[method-assign]

    def uninstall(self) -> None:
        del self.app.repository.get
        self.cities.clear()


def rebuild_variants(app: Dateline) -> dict[str, Any]:
    """read_model.rebuild() as is, then with each read-model prototype, then both."""
    if not has_read_model(app) or not hasattr(app.read_model, "rebuild"):
        return {"skipped": "app.read_model.rebuild has not landed"}
    out: dict[str, Any] = {}
    # "incremental_intervals" alone: no gain (each batch reloads the city, so the memo
    # misses); measured once at 1,000 cities x 20,000 events: 587 vs 641 events/s.
    for name in ("as_is", "city_cache", "both"):
        cache = CityCache(app) if name in ("city_cache", "both") else None
        memo = IncrementalIntervals() if name in ("incremental_intervals", "both") else None
        for prototype in (cache, memo):
            if prototype is not None:
                prototype.install()
        start = time.perf_counter()
        try:
            applied = app.read_model.rebuild()
        finally:
            seconds = time.perf_counter() - start
            for prototype in (cache, memo):
                if prototype is not None:
                    prototype.uninstall()
        out[name] = {"events_per_s": round(applied / seconds, 1), "seconds": round(seconds, 2)}
        if cache is not None:
            out[name] |= {"cache_hits": cache.hits, "cache_misses": cache.misses}
        if memo is not None:
            out[name] |= {"one_step_folds": memo.steps, "full_folds": memo.full}
    return out


# ------------------------------------------------------------------------ map
MAP_SQL = """
SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(
    json_build_object(
        'type', 'Feature', 'id', q.slug,
        'geometry', json_build_object(
            'type', 'Point', 'coordinates', json_build_array(q.lon, q.lat)),
        'properties', json_build_object(
            'city', q.slug, 'as_of', %(as_of_text)s::text, 'known_at', %(known_at_text)s::text,
            'status', coalesce(q.status, 'unknown'), 'controller', q.controller,
            'contested_by', q.contested_by, 'since', q.since, 'event_id', q.event_id,
            'version', coalesce(q.known_version, 0), 'name', q.name, 'province', q.province))
    ORDER BY q.slug), '[]'::json))::text
FROM ({inner}) q"""


def map_in_sql(app: Dateline, reps: int) -> dict[str, Any]:
    """The GeoJSON body built by PostgreSQL (json_agg over the read model's own
    all-cities query), against the in-process path of the map figure."""
    import json
    import random
    from datetime import UTC, date, datetime, timedelta

    from bench.inprocess import geojson_builder

    try:
        from infrastructure import read_model
    except ImportError:
        return {"skipped": "infrastructure.read_model has not landed"}
    inner = getattr(read_model, "STATUS_ALL", None)
    if inner is None or not has_read_model(app):
        return {"skipped": "read_model.STATUS_ALL not found"}
    store = app.read_model._store
    sql = store.sql(MAP_SQL.replace("{inner}", inner))
    build, _ = geojson_builder()
    rng = random.Random(11)
    sql_ms, python_ms = [], []
    same = None
    for i in range(reps + 1):
        as_of = date(2010, 1, 1) + timedelta(days=rng.randrange(16 * 365))
        known_at = datetime.combine(as_of, datetime.max.time(), UTC) + timedelta(days=30)
        params = {
            "d": store.day(as_of),
            "t": store.instant(known_at),
            "as_of_text": as_of.isoformat(),
            "known_at_text": known_at.isoformat(),
        }
        start = time.perf_counter()
        with store.read() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        body = next(iter(row.values())) if isinstance(row, dict) else row[0]
        middle = time.perf_counter()
        python_body = json.dumps(build(app.read_model.statuses(as_of, known_at)))
        end = time.perf_counter()
        if i == 0:
            same = _same_features(body, python_body)
            continue
        sql_ms.append(middle - start)
        python_ms.append(end - middle)
    return {
        "sql_json_agg": summarize(sql_ms),
        "python_path": summarize(python_ms),
        "same_features_as_api": same,
    }


def _same_features(sql_body: str, python_body: str) -> bool:
    import json

    def key(feature: dict[str, Any]) -> tuple[Any, ...]:
        props = {k: v for k, v in feature["properties"].items() if k not in ("known_at",)}
        return (feature["id"], tuple(feature["geometry"]["coordinates"]), sorted(props.items()))

    a = [key(f) for f in json.loads(sql_body)["features"]]
    b = [key(f) for f in json.loads(python_body)["features"]]
    return a == b
