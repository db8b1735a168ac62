"""Request and response bodies of the HTTP API, with examples from the Kunduz seeds.

Requests forbid unknown fields, so a typo (or an attempt to set `reported_by`,
which always comes from the token) is a 422 naming the field. Responses are
built from the views' attributes (`StatusOut.model_validate(view)`): one
definition of each shape, for HTTP and for the command line's `--json`
(`dump`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from dateline.api import instants
from dateline.domain.city import MAX_LATITUDE, MAX_LONGITUDE, MAX_POPULATION, MAX_PROSE, MAX_TEXT
from dateline.domain.control import EventType, Status
from dateline.infrastructure.views import StatusView

DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
# C0 controls other than tab, newline and carriage return, DEL, and lone surrogates:
# never news; a NUL cannot be stored in a PostgreSQL text column, nor a surrogate in UTF-8.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def parse_day(value: Any) -> Any:
    """A date must be written YYYY-MM-DD (no timestamps, no numbers)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not DAY_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date") from None


def parse_instant(value: Any) -> Any:
    """An instant as `api.instants` defines it (a bare date is the end of that day, UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: add Z or +HH:MM")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an ISO 8601 instant (e.g. {instants.EXAMPLE})")
    return instants.parse_instant(value)


def printable(value: str) -> str:
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise ValueError(
            f"contains the unusable character U+{ord(found.group()):04X} at position "
            f"{found.start()}: remove it"
        )
    return value


Text = Annotated[str, AfterValidator(printable)]
# The domain enforces the lengths (after collapsing white space, with its own
# messages); the schema states them.
Label = Annotated[Text, Field(json_schema_extra={"maxLength": MAX_TEXT})]
Prose = Annotated[Text, Field(json_schema_extra={"maxLength": MAX_PROSE})]
Day = Annotated[date, BeforeValidator(parse_day)]
Instant = Annotated[datetime, BeforeValidator(parse_instant)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------- requests
KUNDUZ_CITY: dict[str, Any] = {
    "slug": "kunduz",
    "name": "Kunduz",
    "province": "Kunduz",
    "country": "Afghanistan",
    "lat": 36.7286,
    "lon": 68.8681,
    "population": 374000,
    "initial_controller": "Afghan government",
    "tracked_since": "2015-01-01",
}


class CityIn(Request):
    model_config = ConfigDict(json_schema_extra={"examples": [KUNDUZ_CITY]})

    slug: str = Field(
        pattern=SLUG_PATTERN,
        max_length=64,
        description="lower-case letters, digits and single hyphens; the city's key for good",
    )
    name: Label
    province: Label
    country: Label
    lat: float = Field(ge=-MAX_LATITUDE, le=MAX_LATITUDE, allow_inf_nan=False)
    lon: float = Field(ge=-MAX_LONGITUDE, le=MAX_LONGITUDE, allow_inf_nan=False)
    population: int | None = Field(default=None, ge=0, le=MAX_POPULATION)
    initial_controller: Label = Field(description="who held the city when tracking begins")
    tracked_since: Day = Field(description="the first day the record covers (YYYY-MM-DD)")


class SourceIn(Request):
    name: Label = Field(description="who says so, e.g. a news outlet")
    url: Prose | None = None
    quote: Prose | None = None


class ReportIn(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "Captured",
                    "occurred_on": "2015-09-28",
                    "actor": "Taliban",
                    "source": {
                        "name": "dawn.com",
                        "url": "https://www.dawn.com/news/1209540",
                        "quote": "The city has collapsed",
                    },
                    "note": "Interior Ministry said the city had collapsed.",
                    "report_id": "kunduz-2015-09-28-captured",
                }
            ]
        }
    )

    type: EventType
    occurred_on: Day = Field(description="the day it happened in the world (YYYY-MM-DD)")
    actor: Label = Field(description="who contested, captured or retook the city")
    source: SourceIn
    note: Prose | None = None
    report_id: Label | None = Field(
        default=None,
        description="your id for this report: a repeat with the same id writes nothing "
        "(the Idempotency-Key header does the same)",
    )


class RetractionIn(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"reason": "Duplicate of kunduz-3: the same capture, reported twice."}]
        }
    )

    reason: Prose = Field(description="why the event is withdrawn; kept in the log for good")


# ---------------------------------------------------------------- responses
KUNDUZ_STATUS: dict[str, Any] = {
    "city": "kunduz",
    "as_of": "2015-09-28",
    "known_at": "2021-09-01T12:00:00Z",
    "status": "held",
    "controller": "Taliban",
    "contested_by": None,
    "since": "2015-09-28",
    "event_id": "kunduz-3",
    "version": 10,
}
KUNDUZ_EVENT: dict[str, Any] = {
    "id": "kunduz-3",
    "city": "kunduz",
    "type": "Captured",
    "occurred_on": "2015-09-28",
    "actor": "Taliban",
    "source": {"name": "dawn.com", "url": "https://www.dawn.com/news/1209540", "quote": None},
    "note": "Interior Ministry said the city had collapsed; first provincial capital seized "
    "by the Taliban since 2001.",
    "report_id": "seed:kunduz:2015-09-28:captured",
    "reported_by": "seed",
    "recorded_at": "2021-09-01T12:00:00.000120Z",
    "version": 3,
    "retracts": None,
    "reason": None,
    "retracted": None,
}


class Response(BaseModel):
    # Built from a view's attributes (a path for the nested ones); by name from a dict.
    model_config = ConfigDict(extra="forbid", from_attributes=True, populate_by_name=True)


def dump(model: type[Response], view: Any) -> dict[str, Any]:
    """`view` as the JSON object `model` describes (the command line's `--json`)."""
    return model.model_validate(view).model_dump(mode="json", by_alias=True)


def of_city(name: str) -> Any:
    return Field(validation_alias=AliasPath("city", name))


def of_state(name: str, **field: Any) -> Any:
    return Field(validation_alias=AliasPath("state", name), **field)


class DegradedOut(Response):
    city: str
    event_id: str = Field(description="the first event the read model could not apply")
    reason: str
    noticed_at: datetime


class HealthOut(Response):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ok", "store": "sqlite", "events": 89, "position": 89, "degraded": []}
            ]
        }
    )

    status: Literal["ok", "degraded"]
    store: Literal["sqlite", "postgresql"]
    events: int = Field(description="events the read model reflects")
    position: int = Field(description="the log position (notification id) it reflects")
    degraded: list[DegradedOut] = Field(
        description="cities whose reads answer 503 until `dateline projections rebuild`"
    )


class CityOut(Response):
    model_config = ConfigDict(json_schema_extra={"examples": [KUNDUZ_CITY]})

    slug: str
    name: str
    province: str
    country: str
    lat: float
    lon: float
    population: int | None
    initial_controller: str
    tracked_since: date


class StatusOut(Response):
    """Who controlled the city at the end of `as_of`, as the record stood at `known_at`."""

    model_config = ConfigDict(json_schema_extra={"examples": [KUNDUZ_STATUS]})

    city: str = of_city("slug")
    as_of: date
    known_at: datetime
    status: Status = of_state("status")
    controller: str | None = of_state("controller")
    contested_by: str | None = of_state("contested_by")
    since: date | None = of_state("since")
    event_id: str | None = of_state("event_id", description="the event that made the status so")
    version: int = Field(description="the city's version as known at `known_at`")


class CityWithStatusOut(CityOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **KUNDUZ_CITY,
                    "status": {
                        **KUNDUZ_STATUS,
                        "as_of": "2021-09-01",
                        "since": "2021-08-08",
                        "event_id": "kunduz-10",
                    },
                }
            ]
        }
    )

    status: StatusOut

    @model_validator(mode="before")
    @classmethod
    def from_status_view(cls, data: Any) -> Any:
        """A StatusView: its city's attributes, and itself as the status."""
        if isinstance(data, StatusView):
            return {
                **{name: getattr(data.city, name) for name in CityOut.model_fields},
                "status": data,
            }
        return data


class CityStatusOut(StatusOut):
    """One city's status in `GET /status`, with its name for display."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **KUNDUZ_STATUS,
                    "as_of": "2021-08-08",
                    "event_id": "kunduz-10",
                    "since": "2021-08-08",
                    "name": "Kunduz",
                    "province": "Kunduz",
                    "lat": 36.7286,
                    "lon": 68.8681,
                    "population": 374000,
                }
            ]
        }
    )

    name: str = of_city("name")
    province: str = of_city("province")
    lat: float = of_city("lat")
    lon: float = of_city("lon")
    population: int | None = of_city("population")


class StatusPropertiesOut(CityStatusOut):
    """A city's status in the GeoJSON map layer: with who says so (the source of the
    event in `event_id`; null for a city no event has touched)."""

    source_name: str | None
    source_url: str | None


class IntervalOut(Response):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "from": "2015-09-28",
                    "to": "2015-10-01",
                    "status": "held",
                    "controller": "Taliban",
                    "contested_by": None,
                    "event_id": "kunduz-3",
                }
            ]
        },
    )

    start: date = Field(alias="from", description="first day of the interval")
    end: date | None = Field(alias="to", description="the day it ended; null while it lasts")
    status: Status = of_state("status")
    controller: str | None = of_state("controller")
    contested_by: str | None = of_state("contested_by")
    event_id: str | None = of_state("event_id")


class SourceOut(Response):
    name: str
    url: str | None
    quote: str | None


class RetractionOut(Response):
    event_id: str = Field(description="the id of the Retracted event")
    reason: str
    retracted_by: str
    recorded_at: datetime


class EventOut(Response):
    """One event of a city's log. Control events carry `retracted` once withdrawn;
    a Retracted event names the event it withdraws in `retracts`."""

    model_config = ConfigDict(json_schema_extra={"examples": [KUNDUZ_EVENT]})

    id: str
    city: str
    type: str = Field(description="Registered | Contested | Captured | Retaken | Retracted")
    occurred_on: date | None
    actor: str | None
    source: SourceOut | None
    note: str | None
    report_id: str | None
    reported_by: str | None
    recorded_at: datetime
    version: int
    retracts: str | None
    reason: str | None
    retracted: RetractionOut | None


class ErrorOut(BaseModel):
    """Every error: `detail` says what is wrong and what to do."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "detail": "contested-by-controller: Contested by Taliban on 2015-09-29: "
                    "Taliban already controls Kunduz on that date, so it cannot contest it "
                    "(conflicts with kunduz-3)",
                    "rule": "contested-by-controller",
                    "conflicting_event": "kunduz-3",
                    "is_later_event": False,
                }
            ]
        },
    )

    detail: Any


class FieldErrorOut(BaseModel):
    loc: list[str | int]
    field: str
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "loc": ["body", "occurred_on"],
                            "field": "occurred_on",
                            "msg": "'28/09/2015' is not a date written YYYY-MM-DD",
                            "type": "value_error",
                        }
                    ]
                }
            ]
        }
    )

    detail: list[FieldErrorOut]


# ------------------------------------------------------------------ GeoJSON
class PointGeometry(Response):
    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float] = Field(description="[lon, lat]")


class StatusFeature(Response):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: PointGeometry
    properties: StatusPropertiesOut


STATUS_GEOJSON_EXAMPLE: dict[str, Any] = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "id": "kunduz",
            "geometry": {"type": "Point", "coordinates": [68.8681, 36.7286]},
            "properties": {
                **KUNDUZ_STATUS,
                "as_of": "2021-08-08",
                "event_id": "kunduz-10",
                "since": "2021-08-08",
                "name": "Kunduz",
                "province": "Kunduz",
                "lat": 36.7286,
                "lon": 68.8681,
                "population": 374000,
                "source_name": "moneycontrol.com",
                "source_url": "https://www.moneycontrol.com/news/world/"
                "taliban-capture-northern-afghan-city-of-kunduz-7293831.html",
            },
        }
    ],
}


class StatusFeatureCollection(Response):
    """`GET /status?format=geojson`: one point per city, its status in `properties`."""

    model_config = ConfigDict(json_schema_extra={"examples": [STATUS_GEOJSON_EXAMPLE]})

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[StatusFeature]
