"""GET /status: every city's control on a date, as JSON or as a GeoJSON map layer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from api.auth import Reader
from api.exports import status_rows
from api.presenters import status_dict
from api.routers.deps import AppDep, AsOf, KnownAt, QueriesDep, resolve_known_at
from api.schemas import (
    STATUS_GEOJSON_EXAMPLE,
    CityStatusOut,
    StatusPropertiesOut,
    ValidationErrorOut,
)
from infrastructure.application import StatusView

router = APIRouter(tags=["status"])

GEOJSON = "application/geo+json"


def city_status(view: StatusView) -> dict[str, Any]:
    city = view.city
    return {
        **status_dict(view),
        "name": city.name,
        "province": city.province,
        "lat": city.lat,
        "lon": city.lon,
        "population": city.population,
    }


def feature_collection(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One point per city; `properties` as in the JSON answer plus the source of the
    event that made the status (the export row, minus the columns JSON does not have)."""
    fields = StatusPropertiesOut.model_fields
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": row["city"],
                "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
                "properties": StatusPropertiesOut.model_validate(
                    {k: v for k, v in row.items() if k in fields}
                ).model_dump(mode="json"),
            }
            for row in rows
        ],
    }


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
    response: Response,
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
        collection = feature_collection(status_rows(app, queries, as_of, known))
        return JSONResponse(collection, media_type=GEOJSON, headers={"Vary": "Accept"})
    response.headers["Vary"] = "Accept"
    return [city_status(v) for v in queries.all_statuses(as_of, known)]
