"""Dependencies and parameters shared by the routers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from fastapi.openapi.models import Example

from dateline.api.errors import ApiError
from dateline.api.queries import ControlQueries
from dateline.api.schemas import Day, Instant
from dateline.infrastructure.application import Dateline


async def get_app(request: Request) -> Dateline:
    app: Dateline = request.app.state.dateline
    return app


async def get_queries(request: Request) -> ControlQueries:
    queries: ControlQueries = request.app.state.queries
    return queries


AppDep = Annotated[Dateline, Depends(get_app)]
QueriesDep = Annotated[ControlQueries, Depends(get_queries)]


def example(value: str, summary: str) -> dict[str, Example]:
    """A parameter example for /docs (Swagger UI pre-fills it)."""
    return {"kunduz": Example(summary=summary, value=value)}


Slug = Annotated[
    str,
    Path(
        description="the city's slug (see GET /cities)",
        openapi_examples=example("kunduz", "Kunduz"),
    ),
]
EventId = Annotated[
    str,
    Path(
        description="an event id from the city's log",
        openapi_examples=example("kunduz-3", "Kunduz: the Taliban capture of 28 September 2015"),
    ),
]
AsOf = Annotated[
    Day | None,
    Query(
        description="the day in the world, YYYY-MM-DD (default: today, UTC)",
        openapi_examples=example("2015-09-28", "the day Kunduz fell in 2015"),
    ),
]
KnownAt = Annotated[
    Instant | None,
    Query(
        description="only what was recorded by this instant, ISO 8601 with a time zone; "
        "a bare date YYYY-MM-DD means the end of that day, UTC (default: now)",
        openapi_examples=example("2021-09-01T12:00:00Z", "the record on 1 September 2021"),
    ),
]
IfMatch = Annotated[
    str | None,
    Header(
        description='the city version you decided on, as an ETag: `"7"`; '
        "412 if the city has moved on since",
        openapi_examples=example('"10"', "Kunduz as seeded (10 events)"),
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        description="same as report_id: a repeat with the same key writes nothing",
        openapi_examples=example("kunduz-2015-09-28-captured", "one id per report"),
    ),
]


def resolve_known_at(app: Dateline, known_at: datetime | None) -> datetime:
    """One instant per request, so the body and its ETag describe the same record."""
    return known_at or app.clock()


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header names; None for absent or `*`."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip()
    # A version has at most 18 digits; a longer number is refused, not parsed.
    digits = tag[1:-1]
    if 3 <= len(tag) <= 20 and tag[0] == tag[-1] == '"' and digits.isascii() and digits.isdigit():
        return int(digits)
    shown = if_match if len(if_match) <= 40 else if_match[:40] + "..."
    raise ApiError(
        400,
        f"If-Match {shown!r} is not a city version: send the ETag of your last read, "
        'e.g. If-Match: "7"',
    )
