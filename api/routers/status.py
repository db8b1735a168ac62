"""GET /status: every city's control on a date, as JSON or as a GeoJSON map layer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import TypeAdapter
from pydantic_core import to_json

from dateline.api.answers import json_answer
from dateline.api.auth import Reader
from dateline.api.queries import causing_sources
from dateline.api.routers.deps import AppDep, AsOf, KnownAt, QueriesDep, resolve_known_at
from dateline.api.schemas import (
    STATUS_GEOJSON_EXAMPLE,
    CityStatusOut,
    ValidationErrorOut,
)
from dateline.domain.control import Source
from dateline.infrastructure.application import StatusView

router = APIRouter(tags=["status"])

GEOJSON = "application/geo+json"


STATUSES = TypeAdapter(list[CityStatusOut])


def feature_collection(
    views: list[StatusView], causes: dict[str, Source] | None = None
) -> dict[str, Any]:
    """One point per city; `properties` as in the JSON answer plus the source of the
    event that made the status (`causes`, by event id; see `causing_sources`): dicts
    from the statuses' JSON, validated once, not per feature."""
    found = causes or {}
    features = []
    for view, row in zip(
        views, STATUSES.dump_python(STATUSES.validate_python(views), mode="json"), strict=True
    ):
        source = found.get(view.state.event_id or "")
        row["source_name"] = source.name if source else None
        row["source_url"] = source.url if source else None
        features.append(
            {
                "type": "Feature",
                "id": view.city.slug,
                "geometry": {"type": "Point", "coordinates": [view.city.lon, view.city.lat]},
                "properties": row,
            }
        )
    return {"type": "FeatureCollection", "features": features}


@router.get(
    "/status",
    response_model=list[CityStatusOut],
    summary="Every city's status on a date, as known at a moment",
    description="JSON by default; `?format=geojson` or `Accept: application/geo+json` gives "
    "a GeoJSON FeatureCollection of points ([lon, lat]) with the status, the population and "
    "the source (name and URL) of the event that made the status in `properties`. "
    "The answer varies with `Accept` (`Vary: Accept`).",
    responses={
        200: {
            "content": {
                GEOJSON: {
                    "schema": {"$ref": "#/components/schemas/StatusFeatureCollection"},
                    "example": STATUS_GEOJSON_EXAMPLE,
                }
            }
        },
        422: {"model": ValidationErrorOut, "description": "a bad query parameter"},
    },
)
def all_statuses(
    app: AppDep,
    queries: QueriesDep,
    _: Reader,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    format: Annotated[
        Literal["json", "geojson"] | None,
        Query(description="json (default) or geojson"),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    known = resolve_known_at(app, known_at)
    wants_geojson = format == "geojson" or (format is None and GEOJSON in (accept or ""))
    if wants_geojson:
        # PostgreSQL writes the whole layer in one statement; SQLite's is built here.
        body = app.read_model.geojson(as_of, known)
        if body is None:
            views = queries.all_statuses(as_of, known)
            body = to_json(feature_collection(views, causing_sources(app, views)))
        return Response(body, media_type=GEOJSON, headers={"Vary": "Accept"})
    return json_answer(STATUSES, queries.all_statuses(as_of, known), {"Vary": "Accept"})
