"""What the service answers: plain values, the same from the read model and the fold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from dateline.domain.city import City
from dateline.domain.control import ControlState
from dateline.domain.log import LoggedEvent


@dataclass(frozen=True, slots=True)
class CityView:
    slug: str
    name: str
    province: str
    country: str
    lat: float
    lon: float
    population: int | None
    initial_controller: str
    tracked_since: date


@dataclass(frozen=True, slots=True)
class StatusView:
    city: CityView
    as_of: date
    known_at: datetime
    state: ControlState
    version: int  # the city's version as known at `known_at`


@dataclass(frozen=True, slots=True)
class AppendResult:
    event: LoggedEvent
    created: bool  # False: a repeat of a known report_id, nothing written
    version: int  # the city's version after the append


@dataclass(frozen=True, slots=True)
class DegradedCity:
    """A city whose events the read model could not apply."""

    slug: str
    event_id: str
    reason: str
    noticed_at: datetime


def city_view(city: City) -> CityView:
    return CityView(
        city.slug,
        city.name,
        city.province,
        city.country,
        city.lat,
        city.lon,
        city.population,
        city.initial_controller,
        city.tracked_since,
    )
