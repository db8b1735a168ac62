"""`dateline projections check`: the read model against the aggregate fold.

For every city: the status at a sample of (as_of, known_at) pairs that always
includes each period's and each event's boundaries, the timeline at each record
instant, the history, and the all-cities map at a few pairs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol, cast
from uuid import UUID

from eventsourcing.application import Repository

from dateline.domain.city import City, city_id
from dateline.domain.control import UNKNOWN, ControlInterval
from dateline.domain.log import LoggedEvent
from dateline.infrastructure.progress import Progress
from dateline.infrastructure.read_model.queries import ControlPeriod, ReadModel
from dateline.infrastructure.views import CityView, StatusView, city_view

ONE_DAY = timedelta(days=1)
ONE_MICROSECOND = timedelta(microseconds=1)


class FoldSource(Protocol):
    """What the check needs from the application: the log, replayed."""

    @property
    def repository(self) -> Repository[UUID]: ...

    def clock(self) -> datetime: ...

    def city_slugs(self) -> list[str]: ...

    def history(self, slug: str, known_at: datetime | None = None) -> list[LoggedEvent]: ...

    def version_known_at(self, slug: str, known_at: datetime) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Difference:
    """Where the read model and the aggregate fold disagree."""

    city: str
    what: str  # status | statuses | timeline | history | cities
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
    map_pairs: list[tuple[date, datetime]] = [(app.clock().date(), app.clock())]
    for slug in _reported(log_slugs, progress):
        if slug not in model_slugs or slug in degraded:
            continue
        fold = _Fold(app, slug)
        expected_log = app.history(slug)
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
            if slug not in by_slug or slug in degraded:
                continue
            expected = _Fold(app, slug).status(as_of, known_at)
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
    """`Dateline.status`/`timeline` for one city, with each version loaded once."""

    def __init__(self, app: FoldSource, slug: str) -> None:
        self.app = app
        self.slug = slug
        self.id = city_id(slug)
        self.now = app.clock()
        current = cast(City, app.repository.get(self.id))
        self.view = city_view(current)
        self._versions: dict[int, City] = {current.version: current}

    def _at(self, known_at: datetime) -> City | None:
        version = self.app.version_known_at(self.slug, known_at)
        if version is None:
            return None
        if version not in self._versions:
            self._versions[version] = cast(City, self.app.repository.get(self.id, version=version))
        return self._versions[version]

    def status(self, as_of: date, known_at: datetime) -> StatusView:
        city = self._at(known_at)
        if city is None:
            return StatusView(self.view, as_of, known_at, UNKNOWN, 0)
        return StatusView(city_view(city), as_of, known_at, city.status_on(as_of), city.version)

    def timeline(self, known_at: datetime) -> tuple[CityView, list[ControlInterval]]:
        city = self._at(known_at)
        return self.view, ([] if city is None else city.intervals())


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
