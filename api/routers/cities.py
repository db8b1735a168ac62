"""Cities: list, register, read, status as of a date, timeline of control."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import TypeAdapter

from dateline.api.answers import json_answer
from dateline.api.auth import Editor, Reader
from dateline.api.errors import etag
from dateline.api.pagination import MAX_PAGE_SIZE, After, Limit, paginate
from dateline.api.routers.deps import AppDep, AsOf, KnownAt, QueriesDep, Slug, resolve_known_at
from dateline.api.schemas import (
    CityIn,
    CityWithStatusOut,
    ErrorOut,
    IntervalOut,
    StatusOut,
    ValidationErrorOut,
    dump,
)
from dateline.infrastructure.audit import receipts

router = APIRouter(tags=["cities"])

CITY_WITH_STATUS = TypeAdapter(CityWithStatusOut)
STATUS = TypeAdapter(StatusOut)
INTERVALS = TypeAdapter(list[IntervalOut])

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no token, or an unknown or revoked one"},
    403: {"model": ErrorOut, "description": "the token's role is too low"},
}
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "a bad token (or none, if reads are not public)"},
    404: {"model": ErrorOut, "description": "no such city"},
    422: {"model": ValidationErrorOut, "description": "a bad query parameter"},
}


@router.get(
    "/cities",
    response_model=list[CityWithStatusOut],
    summary="Every city with its current status, by slug",
    description=f"Paginated: at most `limit` cities (max {MAX_PAGE_SIZE}) after the slug "
    '`after`; `Link: rel="next"` gives the next page.',
    responses={422: {"model": ValidationErrorOut, "description": "a bad query parameter"}},
)
def list_cities(
    app: AppDep,
    queries: QueriesDep,
    request: Request,
    response: Response,
    _: Reader,
    limit: Limit = MAX_PAGE_SIZE,
    after: After = None,
) -> list[CityWithStatusOut]:
    views = queries.all_statuses(None, app.clock())
    page = paginate(
        views,
        [v.city.slug for v in views],
        after=after,
        limit=limit,
        request=request,
        response=response,
    )
    return [CityWithStatusOut.model_validate(v) for v in page]


@router.post(
    "/cities",
    status_code=201,
    response_model=CityWithStatusOut,
    summary="Register a city (editor)",
    responses={
        **AUTH_ERRORS,
        400: {"model": ErrorOut, "description": "the body is not a JSON object"},
        409: {"model": ErrorOut, "description": "the slug is already registered"},
        422: {"model": ValidationErrorOut, "description": "a field is invalid"},
    },
)
def register_city(
    body: CityIn, app: AppDep, request: Request, response: Response, _: Editor
) -> CityWithStatusOut:
    app.register_city(**body.model_dump())
    view = app.read_model.status(body.slug)
    response.headers["Location"] = str(request.url_for("get_city", slug=body.slug))
    response.headers["ETag"] = etag(view.version)
    return CityWithStatusOut.model_validate(view)


@router.get(
    "/cities/{slug}",
    response_model=CityWithStatusOut,
    summary="A city and its current status",
    description="A browser (`Accept: text/html`) is sent to the page with the city open "
    "(303 to `/?city={slug}`).",
    responses=READ_ERRORS,
)
def get_city(
    slug: Slug,
    app: AppDep,
    _: Reader,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    view = app.read_model.status(slug)
    if wants_html(accept):  # a browser: the page, with the city's panel open
        return RedirectResponse(f"/?city={slug}", status_code=303, headers={"Vary": "Accept"})
    return json_answer(CITY_WITH_STATUS, view, {"ETag": etag(view.version), "Vary": "Accept"})


def wants_html(accept: str | None) -> bool:
    """A browser navigating (text/html asked for, JSON not)."""
    text = (accept or "").lower()
    return "text/html" in text and "json" not in text


@router.get(
    "/cities/{slug}/status",
    response_model=StatusOut,
    summary="Who controlled the city as of a date, as known at a moment",
    responses=READ_ERRORS,
)
def city_status(
    slug: Slug,
    app: AppDep,
    _: Reader,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    receipt: Annotated[
        bool,
        Query(
            description="add a `receipt`: the city's events in a signed checkpoint with "
            "their hashes and the Merkle proof that none is missing, signed, checkable "
            "offline with `dateline audit check-receipt`"
        ),
    ] = False,
) -> Any:
    view = app.read_model.status(slug, as_of, resolve_known_at(app, known_at))
    headers = {"ETag": etag(view.version)}
    if receipt:  # a citable answer: the answer as JSON, signed
        answer = dump(StatusOut, view)
        signed = receipts.issue(app, answer, app.clock())
        return JSONResponse({**answer, "receipt": signed}, headers=headers)
    return json_answer(STATUS, view, headers)


TIMELINE_PAGE_SIZE = 100


@router.get(
    "/cities/{slug}/timeline",
    response_model=list[IntervalOut],
    summary="The city's control intervals in world order (`to` null for the open one)",
    description=f"Paginated: at most `limit` intervals (default {TIMELINE_PAGE_SIZE}, max "
    f'{MAX_PAGE_SIZE}) starting after the day `after`; `Link: rel="next"` gives the next '
    "page, with the first page's `known_at`. A page costs the same however long the city's "
    "history is.",
    responses=READ_ERRORS,
)
def city_timeline(
    slug: Slug,
    app: AppDep,
    request: Request,
    _: Reader,
    known_at: KnownAt = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_PAGE_SIZE,
            description=f"intervals per page (default {TIMELINE_PAGE_SIZE}, at most "
            f"{MAX_PAGE_SIZE})",
        ),
    ] = TIMELINE_PAGE_SIZE,
    after: Annotated[
        date | None,
        Query(
            description="the `from` day of the last interval of the previous page: follow "
            'the `Link: rel="next"` header rather than building it'
        ),
    ] = None,
) -> Any:
    known = resolve_known_at(app, known_at)
    intervals, more, version = app.read_model.timeline_page(slug, known, after, limit)
    headers = {"ETag": etag(version)}
    if more:
        params = {
            "known_at": known.isoformat(),
            "limit": str(limit),
            "after": intervals[-1].start.isoformat(),
        }
        headers["Link"] = f'<{request.url.include_query_params(**params)}>; rel="next"'
    return json_answer(INTERVALS, intervals, headers)
