"""Load the researched 2015-2021 timeline (cities.csv, control_events.csv).

The seeds are an archive like any other: they go through `dateline import`'s
path (`infrastructure.importer`). Each row becomes a report with a stable
report_id (`seed:{slug}:{occurred_on}:{event_type}`), so loading twice adds
nothing; every row is decided in memory first, and nothing is written if one
is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dateline.infrastructure.application import Dateline
from dateline.infrastructure.importer import ImportRefused, run_import
from dateline.infrastructure.progress import Progress

SEEDS_DIR = Path(__file__).parent
COUNTRY = "Afghanistan"
SEED_REPORTER = "seed"

__all__ = ["SEEDS_DIR", "SeedResult", "load_seeds"]


@dataclass(frozen=True)
class SeedResult:
    cities_registered: int
    events_written: int
    events_already_present: int


def load_seeds(
    app: Dateline, seeds_dir: Path = SEEDS_DIR, progress: Progress | None = None
) -> SeedResult:
    """Import the seeds; `progress`, if given, is told the cities done by each
    transaction, with all the cities as the total. Raises ImportRefused (and
    writes nothing) if a row is refused."""
    result = run_import(
        app,
        seeds_dir / "control_events.csv",
        seeds_dir / "cities.csv",
        progress=progress,
        country=COUNTRY,
        reporter=SEED_REPORTER,
    )
    if result.refusals:
        raise ImportRefused(result.refusals)
    return SeedResult(
        result.cities_registered, result.events_written, result.events_already_present
    )
