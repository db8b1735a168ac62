"""Load the researched 2015-2021 timeline (cities.csv, control_events.csv).

Each row becomes a report with a stable report_id, so loading twice adds
nothing. Cities are decided in memory and saved many per transaction.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from dateline.domain.city import City
from dateline.domain.control import EventType, Source
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.progress import Progress

SEEDS_DIR = Path(__file__).parent
COUNTRY = "Afghanistan"
SEED_REPORTER = "seed"
SAVE_BATCH = 64  # cities per transaction


@dataclass(frozen=True)
class SeedResult:
    cities_registered: int
    events_written: int
    events_already_present: int


def source_name(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")


def seed_report_id(slug: str, row: dict[str, str]) -> str:
    return f"seed:{slug}:{row['occurred_on']}:{row['event_type'].lower()}"


def load_seeds(
    app: Dateline, seeds_dir: Path = SEEDS_DIR, progress: Progress | None = None
) -> SeedResult:
    """Decide every city in memory (nothing is written if a row is refused),
    then save them, SAVE_BATCH per transaction. `progress`, if given, is told
    the cities saved by each batch, with all the cities as the total."""
    with open(seeds_dir / "cities.csv", newline="", encoding="utf-8") as f:
        city_rows = list(csv.DictReader(f))
    with open(seeds_dir / "control_events.csv", newline="", encoding="utf-8") as f:
        event_rows = list(csv.DictReader(f))
    slug_by_name = {row["name"]: row["slug"] for row in city_rows}

    cities: dict[str, City] = {}
    registered = 0
    for row in city_rows:
        existing = app.find_city(row["slug"])
        if existing is None:
            existing = City.register(
                slug=row["slug"],
                name=row["name"],
                province=row["province"],
                country=COUNTRY,
                lat=float(row["lat"]),
                lon=float(row["lon"]),
                population=int(row["population"]) if row["population"] else None,
                initial_controller=row["initial_controller"],
                tracked_since=date.fromisoformat(row["tracked_since"]),
                recorded_at=app.clock(),
            )
            registered += 1
        cities[row["slug"]] = existing

    already = 0
    for row in event_rows:
        slug = slug_by_name.get(row["city"])
        if slug is None:
            raise ValueError(f"control_events.csv names city {row['city']!r}, not in cities.csv")
        outcome = cities[slug].report(
            EventType(row["event_type"]),
            occurred_on=date.fromisoformat(row["occurred_on"]),
            actor=row["actor"],
            source=Source(source_name(row["source_url"]), row["source_url"]),
            note=row["note"] or None,
            report_id=seed_report_id(slug, row),
            reported_by=SEED_REPORTER,
            recorded_at=app.clock(),
        )
        already += not outcome.created

    decided = list(cities.values())
    if progress:
        progress(0, len(decided))
    written = 0
    for start in range(0, len(decided), SAVE_BATCH):
        batch = decided[start : start + SAVE_BATCH]
        written += app.import_cities(batch, batch_size=SAVE_BATCH)
        if progress:
            progress(len(batch), len(decided))
    return SeedResult(registered, written, already)
