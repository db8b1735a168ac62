"""GET /health: is the store reachable, which is it, how many events it holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.routers.deps import AppDep
from api.schemas import ErrorOut, HealthOut

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Liveness and store",
    responses={503: {"model": ErrorOut, "description": "the store is unreachable"}},
)
def health(app: AppDep) -> dict[str, Any]:
    return {"status": "ok", "store": app.store.kind, "events": app.count_events()}
