"""`dateline projections check`: the read model against the aggregate fold.

For every city: the status at a sample of (as_of, known_at) pairs that always
includes each period's and each event's boundaries, the timeline at each record
instant, the history, and the all-cities map at a few pairs.

The fold side is computed in bulk: the log is streamed once in notification
order (as a rebuild reads it), each city folded in memory by the `City`
aggregate, keeping each version's record instant and control intervals; no
city is replayed from the store per version. The read-model side is asked
through its queries, as readers ask it.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from dateline.domain.city import City, city_id
from dateline.domain.control import UNKNOWN, ControlInterval, state_on
from dateline.domain.log import LoggedEvent, read_log
from dateline.infrastructure.progress import Progress
from dateline.infrastructure.read_model.queries import ControlPeriod, ReadModel
from dateline.infrastructure.read_model.rebuild import stream_log
from dateline.infrastructure.views import CityView, StatusView, city_view

ONE_DAY = timedelta(days=1)
ONE_MICROSECOND = timedelta(microseconds=1)


class FoldSource(Protocol):
    """What the check needs from the application: the log and its mapper."""

    @property
    def recorder(self) -> Any: ...

    @property
    def mapper(self) -> Any: ...

    def clock(self) -> datetime: ...

    def city_slugs(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Difference:
    """Where the read model and the aggregate fold disagree."""

    city: str
    what: str  # status | statuses | timeline | history | cities | degraded | log
    as_of: date | None
    known_at: datetime | None
    read_model: str
    fold: str


def check(
    app: FoldSource,
    model: ReadModel,
    samples: int = 200,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[list[Difference], int]:
    """Compare with the aggregate fold (as `Dateline.status` computes it) on
    every city: the status at a sample of (as_of, known_at) pairs that always
    includes each period's and each event's boundaries, the timeline at each
    record instant, the history, and the all-cities map at a few pairs.
    Returns the differences and the number of pairs compared. `progress`, if
    given, is told each city compared, with the log's cities as the total."""
    differences: list[Difference] = []
    log_slugs = app.city_slugs()
    model_slugs = model.city_slugs()
    degraded = {d.slug: d for d in model.degraded()}
    for slug, d in sorted(degraded.items()):
        differences.append(
            Difference(slug, "degraded", None, d.noticed_at, f"{d.event_id}: {d.reason}", "")
        )
    for slug in sorted(set(log_slugs) ^ set(model_slugs)):
        where = "read model" if slug in model_slugs else "log"
        differences.append(Difference(slug, "cities", None, None, f"only in the {where}", ""))
    compared = 0
    rng = random.Random(seed)
    now = app.clock()
    map_pairs: list[tuple[date, datetime]] = [(now.date(), now)]
    folds = _fold_log(app, now)
    for slug in _reported(log_slugs, progress):
        if slug not in model_slugs or slug in degraded:
            continue
        fold = folds.get(city_id(slug))
        if fold is None or fold.failure is not None:
            why = fold.failure if fold is not None else "no events"
            differences.append(
                Difference(slug, "log", None, now, "", f"the log cannot be folded: {why}")
            )
            continue
        expected_log = fold.history()
        actual_log = model.history(slug)
        if expected_log != actual_log:
            differences.append(
                Difference(
                    slug, "history", None, fold.now, _short(actual_log), _short(expected_log)
                )
            )
        periods = model.periods(slug)
        days, instants = _boundaries(fold.view.tracked_since, expected_log, periods, fold.now)
        for known_at in instants:
            model_view, model_intervals = model.timeline(slug, known_at)
            fold_view, fold_intervals = fold.timeline(known_at)
            if (model_view, model_intervals) != (fold_view, fold_intervals):
                differences.append(
                    Difference(
                        slug,
                        "timeline",
                        None,
                        known_at,
                        _short(model_intervals),
                        _short(fold_intervals),
                    )
                )
        for as_of, known_at in _pairs(days, instants, samples, rng):
            compared += 1
            actual = model.status(slug, as_of, known_at)
            expected = fold.status(as_of, known_at)
            if actual != expected:
                differences.append(
                    Difference(
                        slug, "status", as_of, known_at, _describe(actual), _describe(expected)
                    )
                )
        map_pairs.append((rng.choice(days), rng.choice(instants)))
    for as_of, known_at in map_pairs[:5]:
        by_slug = {v.city.slug: v for v in model.statuses(as_of, known_at)}
        for slug in log_slugs:
            fold = folds.get(city_id(slug))
            if slug not in by_slug or slug in degraded or fold is None or fold.failure:
                continue
            expected = fold.status(as_of, known_at)
            if by_slug[slug] != expected:
                differences.append(
                    Difference(
                        slug,
                        "statuses",
                        as_of,
                        known_at,
                        _describe(by_slug[slug]),
                        _describe(expected),
                    )
                )
    return differences, compared


def _reported(slugs: Sequence[str], progress: Progress | None) -> Iterator[str]:
    """Each slug, telling `progress` once the caller is done with it."""
    if progress:
        progress(0, len(slugs))
    for slug in slugs:
        yield slug
        if progress:
            progress(1, len(slugs))


class _Fold:
    """One city folded from the streamed log: `Dateline.status`/`timeline`/
    `history` for it, from each version's record instant and intervals."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.city: City | None = None
        self.events: list[Any] = []
        self.instants: list[datetime] = []  # strictly increasing: version i at [i - 1]
        self.intervals: list[tuple[ControlInterval, ...]] = []
        self.failure: str | None = None

    def apply(self, event: Any) -> None:
        city = event.mutate(self.city)
        assert isinstance(city, City)
        city.take_interval_changes()  # not needed here: do not keep them
        self.city = city
        self.events.append(event)
        self.instants.append(event.timestamp)
        self.intervals.append(tuple(city.intervals()))

    @property
    def view(self) -> CityView:
        assert self.city is not None
        return city_view(self.city)

    def history(self) -> list[LoggedEvent]:
        assert self.city is not None
        return read_log(self.city.slug, self.events)

    def _version(self, known_at: datetime) -> int:
        return bisect_right(self.instants, known_at)  # 0: registered later

    def status(self, as_of: date, known_at: datetime) -> StatusView:
        version = self._version(known_at)
        if version == 0:
            return StatusView(self.view, as_of, known_at, UNKNOWN, 0)
        state = state_on(self.intervals[version - 1], self.view.tracked_since, as_of)
        return StatusView(self.view, as_of, known_at, state, version)

    def timeline(self, known_at: datetime) -> tuple[CityView, list[ControlInterval]]:
        version = self._version(known_at)
        return self.view, ([] if version == 0 else list(self.intervals[version - 1]))


def _fold_log(app: FoldSource, now: datetime) -> dict[UUID, _Fold]:
    """Every city of the log, folded in memory from one stream of the log."""
    folds: dict[UUID, _Fold] = {}
    mapper = app.mapper
    for batch in stream_log(app.recorder):
        for notification in batch:
            cid = UUID(str(notification.originator_id))
            fold = folds.get(cid)
            if fold is None:
                fold = folds[cid] = _Fold(now)
            if fold.failure is not None:
                continue
            try:
                fold.apply(mapper.to_domain_event(notification))
            except Exception as error:  # this city only
                fold.failure = f"version {notification.originator_version}: {error}"[:300]
    return folds


def _boundaries(
    tracked_since: date, log: Iterable[LoggedEvent], periods: Iterable[ControlPeriod], now: datetime
) -> tuple[list[date], list[datetime]]:
    days = {tracked_since - ONE_DAY, tracked_since}
    instants = {now}
    for e in log:
        instants |= {e.recorded_at, e.recorded_at - ONE_MICROSECOND}
        if e.occurred_on is not None:
            days |= {e.occurred_on - ONE_DAY, e.occurred_on}
    for p in periods:
        days |= {p.valid_from, p.valid_from - ONE_DAY}
        instants |= {p.known_from, p.known_from - ONE_MICROSECOND}
        if p.valid_to is not None:
            days |= {p.valid_to, p.valid_to - ONE_DAY}
        if p.known_to is not None:
            instants |= {p.known_to, p.known_to - ONE_MICROSECOND}
    return sorted(days), sorted(instants)


def _pairs(
    days: Sequence[date], instants: Sequence[datetime], samples: int, rng: random.Random
) -> list[tuple[date, datetime]]:
    """All pairs if there are at most `samples`; else every day and every instant
    at least once, then random pairs up to `samples`."""
    if len(days) * len(instants) <= samples:
        return [(d, t) for d in days for t in instants]
    chosen = {(d, rng.choice(instants)) for d in days}
    chosen |= {(rng.choice(days), t) for t in instants}
    while len(chosen) < samples:
        chosen.add((rng.choice(days), rng.choice(instants)))
    return sorted(chosen)


def _describe(view: StatusView) -> str:
    s = view.state
    return (
        f"{s.status.value} controller={s.controller} contested_by={s.contested_by} "
        f"since={s.since} event={s.event_id} version={view.version}"
    )


def _short(items: Sequence[Any]) -> str:
    return f"{len(items)} items: " + "; ".join(repr(i) for i in items)[:300]
