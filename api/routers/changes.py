"""GET /changes: control events across cities, in date order, over a range of days."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from dateline.api.auth import Reader
from dateline.api.errors import field_error
from dateline.api.pagination import MAX_PAGE_SIZE, After, Limit, paginate
from dateline.api.routers.deps import AppDep, KnownAt, QueriesDep, example, resolve_known_at
from dateline.api.schemas import Day, EventOut, ValidationErrorOut

router = APIRouter(tags=["changes"])


@router.get(
    "/changes",
    response_model=list[EventOut],
    summary="Every control event, across cities, with occurred_on in [from, to]",
    description="In date order (ties: city, then recording order). Events retracted by "
    "`known_at` are left out unless `include_retracted=true`. E.g. the fall of the "
    "provincial capitals: `?from=2021-08-06&to=2021-08-15`. Paginated: at most `limit` "
    f'events (max {MAX_PAGE_SIZE}); `Link: rel="next"` gives the next page, with '
    "the first page's `known_at`.",
    responses={422: {"model": ValidationErrorOut, "description": "a bad query parameter"}},
)
def list_changes(
    app: AppDep,
    queries: QueriesDep,
    request: Request,
    response: Response,
    _: Reader,
    start: Annotated[
        Day,
        Query(
            alias="from",
            description="first day, YYYY-MM-DD",
            openapi_examples=example("2021-08-06", "the fall of the provincial capitals"),
        ),
    ],
    end: Annotated[
        Day | None,
        Query(
            alias="to",
            description="last day, YYYY-MM-DD (default: today)",
            openapi_examples=example("2021-08-15", "the day Kabul fell"),
        ),
    ] = None,
    known_at: KnownAt = None,
    include_retracted: Annotated[
        bool, Query(description="also list events retracted by known_at")
    ] = False,
    limit: Limit = MAX_PAGE_SIZE,
    after: After = None,
) -> list[EventOut]:
    known = resolve_known_at(app, known_at)
    last: date = end or known.date()
    if last < start:
        raise field_error(("query", "to"), f"to ({last}) is before from ({start})")
    events = queries.changes(start, last, known, include_retracted=include_retracted)
    page = paginate(
        events,
        [e.id for e in events],
        after=after,
        limit=limit,
        request=request,
        response=response,
        pinned={"known_at": known.isoformat()},
    )
    return [EventOut.model_validate(e) for e in page]
