"""Cursor pagination for the list endpoints: `limit`, `after`, and `Link: rel="next"`.

A page holds at most `limit` rows (at most MAX_PAGE_SIZE, the default). `after`
is the id of the last row of the previous page; the `Link` header of a page
that is not the last gives the next page's URL. Listings that depend on
`known_at` carry the first page's `known_at` in that URL, so a walk through
every page reads one state of the record: every row exactly once, even while
events are being appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, TypeVar

from fastapi import Query, Request, Response

from dateline.api.errors import field_error

MAX_PAGE_SIZE = 1000

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"rows per page, at most {MAX_PAGE_SIZE} (the default)",
    ),
]
After = Annotated[
    str | None,
    Query(
        description="the id of the last row of the previous page: follow the `Link: "
        'rel="next"` header rather than building it',
        max_length=200,
    ),
]

Row = TypeVar("Row")


def paginate(
    rows: Sequence[Row],
    ids: Sequence[str],
    *,
    after: str | None,
    limit: int,
    request: Request,
    response: Response,
    pinned: dict[str, str] | None = None,
) -> list[Row]:
    """The page of `rows` (whose ids are `ids`, same order) after `after`; sets the
    Link header to the next page, with `pinned` query parameters added."""
    start = 0
    if after is not None:
        try:
            start = list(ids).index(after) + 1
        except ValueError:
            raise field_error(
                ("query", "after"),
                f"{after!r} is not a row of this listing: follow the Link header of the "
                "previous page",
            ) from None
    page = list(rows[start : start + limit])
    if start + limit < len(rows):
        params = {**(pinned or {}), "limit": str(limit), "after": ids[start + limit - 1]}
        response.headers["Link"] = f'<{request.url.include_query_params(**params)}>; rel="next"'
    return page
