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
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
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

if TYPE_CHECKING:
    from bench.run import Run
    from infrastructure.application import Dateline
    from infrastructure.settings import Settings

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
    team = make_writers(builder, writers, 8, seed=55)
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


def run_all(app: Dateline, builder: LogBuilder, run: Run, settings: Settings) -> dict[str, Any]:
    results: dict[str, Any] = {}
    log = run.log
    log("  appends: group commit / coalesced catch-up")
    results["append_inprocess_variants"] = append_variants(
        app, builder, run.args.writers, run.seconds
    )
    log("  status: projector_func on the aggregate path")
    results["status_aggregate_projector_func"] = status_aggregate_fast(
        app, builder, min(run.samples, 1000)
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
