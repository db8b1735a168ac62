"""The figures of issue 4: what each measures, its baseline and its target."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Spec:
    key: str
    title: str
    baseline: str | None  # what the same run measures to divide by
    target: str


SPECS: list[Spec] = [
    Spec(
        "append_inprocess",
        "append one event per command, 16 concurrent writers, in process (Dateline.report)",
        "raw psycopg single-row INSERT + COMMIT into an equivalent table, 16 connections",
        "ratio >= 0.5",
    ),
    Spec(
        "append_http",
        "append over HTTP (POST /cities/{slug}/events), 16 concurrent reporters",
        None,
        "p99 <= 50 ms and >= 500 events/s",
    ),
    Spec(
        "bulk_import",
        "bulk import through Dateline.import_cities (issue 4's path; "
        "`dateline import` has its own benchmark, bench.import_bench)",
        "COPY of the same event and index rows into equivalent tables",
        "ratio >= 0.5",
    ),
    Spec(
        "status_inprocess",
        "read_model.status(city, as_of, known_at), in process",
        None,
        "p99 <= 1 ms",
    ),
    Spec(
        "status_http",
        "GET /cities/{slug}/status?as_of&known_at, 16 concurrent clients",
        None,
        "p99 <= 10 ms and >= 1,000 req/s",
    ),
    Spec(
        "map_geojson",
        "the map of all cities on a date as GeoJSON, in process (query + build + encode)",
        None,
        "<= 100 ms for 10,000 cities",
    ),
    Spec(
        "projection_rebuild",
        "read model rebuilt from scratch (read_model.rebuild)",
        "reading the same events raw with psycopg, same page size",
        "ratio >= 0.5",
    ),
    Spec(
        "replay_snapshot",
        "one city reconstructed from its latest snapshot (repository.get)",
        None,
        "<= 1 ms",
    ),
    Spec(
        "replay_full",
        "one city replayed in full from its events, per event",
        None,
        "none (reported per event)",
    ),
]
KEYS = [s.key for s in SPECS]
SPEC = {s.key: s for s in SPECS}


@dataclass
class Figure:
    key: str
    title: str
    target: str
    status: str = "measured"  # or "not measured: <reason>"
    value: dict[str, Any] = field(default_factory=dict)  # the headline numbers
    unit: str = ""
    baseline: dict[str, Any] | None = None
    baseline_description: str | None = None
    ratio: float | None = None
    met: bool | None = None
    missed_by: str | None = None  # "how far from the target", when missed
    limited_by: str | None = None  # what limits it (from the profile)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, key: str) -> Figure:
        spec = SPEC[key]
        return cls(key, spec.title, spec.target, baseline_description=spec.baseline)

    @classmethod
    def not_measured(cls, key: str, reason: str) -> Figure:
        figure = cls.of(key)
        figure.status = f"not measured: {reason}"
        return figure

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_at_least(figure: Figure, value: float, target: float, what: str) -> None:
    """Mark met/missed for 'value >= target'."""
    ok = value >= target
    figure.met = ok if figure.met is None else figure.met and ok
    if not ok:
        factor = target / value if value > 0 else float("inf")
        note = f"{what} {value:,.3g} < {target:,.3g} ({factor:.1f}x short)"
        figure.missed_by = note if figure.missed_by is None else f"{figure.missed_by}; {note}"


def judge_at_most(figure: Figure, value: float, target: float, what: str) -> None:
    """Mark met/missed for 'value <= target'."""
    ok = value <= target
    figure.met = ok if figure.met is None else figure.met and ok
    if not ok:
        factor = value / target if target > 0 else float("inf")
        note = f"{what} {value:,.3g} > {target:,.3g} ({factor:.1f}x over)"
        figure.missed_by = note if figure.missed_by is None else f"{figure.missed_by}; {note}"
