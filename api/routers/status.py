"""GET /status: every city's control on a date, as JSON or as a GeoJSON map layer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from api.auth import Reader
from api.presenters import status_dict
from api.routers.deps import AppDep, AsOf, KnownAt, QueriesDep, resolve_known_at
from api.schemas import STATUS_GEOJSON_EXAMPLE, CityStatusOut, ValidationErrorOut
from infrastructure.application import StatusView

router = APIRouter(tags=["status"])

GEOJSON = "application/geo+json"


def city_status(view: StatusView) -> dict[str, Any]:
    return {**status_dict(view), "name": view.city.name, "province": view.city.province}


def feature_collection(views: list[StatusView]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": v.city.slug,
                "geometry": {"type": "Point", "coordinates": [v.city.lon, v.city.lat]},
                "properties": CityStatusOut.model_validate(city_status(v)).model_dump(mode="json"),
            }
            for v in views
        ],
    }


@router.get(
    "/status",
    response_model=list[CityStatusOut],
    summary="Every city's status on a date, as known at a moment",
    description="JSON by default; `?format=geojson` or `Accept: application/geo+json` gives "
    "a GeoJSON FeatureCollection of points ([lon, lat]) with the status in `properties`.",
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
    views = queries.all_statuses(as_of, resolve_known_at(app, known_at))
    wants_geojson = format == "geojson" or (format is None and GEOJSON in (accept or ""))
    if wants_geojson:
        return JSONResponse(feature_collection(views), media_type=GEOJSON)
    return [city_status(v) for v in views]
