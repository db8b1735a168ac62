"""CSV exports: GET /status.csv and GET /changes.csv (columns in api.exports)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from dateline.api.auth import Reader
from dateline.api.errors import field_error
from dateline.api.exports import CHANGES_COLUMNS, STATUS_COLUMNS, change_rows, status_rows, to_csv
from dateline.api.routers.deps import AppDep, AsOf, KnownAt, QueriesDep, example, resolve_known_at
from dateline.api.schemas import Day, ValidationErrorOut

router = APIRouter(tags=["exports"])

CSV = "text/csv; charset=utf-8"
STATUS_CSV_EXAMPLE = (
    ",".join(STATUS_COLUMNS) + "\r\n"
    "kunduz,Kunduz,Kunduz,Afghanistan,36.7286,68.8681,374000,2015-09-29,"
    "2021-09-01T12:00:00+00:00,held,Taliban,,2015-09-28,kunduz-3,dawn.com,"
    "https://www.dawn.com/news/1209540,10\r\n"
)
CHANGES_CSV_EXAMPLE = (
    ",".join(CHANGES_COLUMNS) + "\r\n"
    "kunduz-3,kunduz,Kunduz,Kunduz,36.7286,68.8681,2015-09-28,Captured,Taliban,dawn.com,"
    "https://www.dawn.com/news/1209540,,Interior Ministry said the city had collapsed.,seed,"
    "2021-09-01T12:00:00.000120+00:00,,\r\n"
)
BAD_QUERY: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrorOut, "description": "a bad query parameter"}
}


def csv_response(text: str, filename: str) -> Response:
    return Response(
        text.encode("utf-8"),
        media_type=CSV,
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


@router.get(
    "/status.csv",
    response_class=Response,
    summary="Every city's status on a date, as known at a moment, as CSV",
    description="One row per city: " + ", ".join(f"`{c}`" for c in STATUS_COLUMNS) + ".",
    responses={200: {"content": {"text/csv": {"example": STATUS_CSV_EXAMPLE}}}, **BAD_QUERY},
)
def status_csv(
    app: AppDep, queries: QueriesDep, _: Reader, as_of: AsOf = None, known_at: KnownAt = None
) -> Response:
    known = resolve_known_at(app, known_at)
    day = as_of or known.date()
    rows = status_rows(app, queries, day, known)
    return csv_response(to_csv(STATUS_COLUMNS, rows), f"dateline-status-{day}.csv")


@router.get(
    "/changes.csv",
    response_class=Response,
    summary="Control events with occurred_on in [from, to], as CSV",
    description="One row per event, in date order: "
    + ", ".join(f"`{c}`" for c in CHANGES_COLUMNS)
    + ".",
    responses={200: {"content": {"text/csv": {"example": CHANGES_CSV_EXAMPLE}}}, **BAD_QUERY},
)
def changes_csv(
    app: AppDep,
    queries: QueriesDep,
    _: Reader,
    start: Annotated[
        Day,
        Query(
            alias="from",
            description="first day, YYYY-MM-DD",
            openapi_examples=example("2021-08-06", "the fall of the provincial capitals"),
        ),
    ],
    end: Annotated[Day | None, Query(alias="to", description="last day (default: today)")] = None,
    known_at: KnownAt = None,
    include_retracted: Annotated[
        bool, Query(description="also list events retracted by known_at")
    ] = False,
) -> Response:
    known = resolve_known_at(app, known_at)
    last: date = end or known.date()
    if last < start:
        raise field_error(("query", "to"), f"to ({last}) is before from ({start})")
    rows = change_rows(queries, start, last, known, include_retracted=include_retracted)
    return csv_response(to_csv(CHANGES_COLUMNS, rows), f"dateline-changes-{start}-{last}.csv")
