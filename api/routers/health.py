"""GET /health: is the store reachable, which is it, is the read model whole."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from dateline.api.routers.deps import AppDep
from dateline.api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Liveness, store, and the read model's state",
    responses={
        503: {
            "model": HealthOut,
            "description": "the store is unreachable, or a city's read model is degraded",
        }
    },
)
def health(app: AppDep) -> Any:
    position, events = app.read_model.progress()  # one row: no count of the log
    degraded = [
        {
            "city": d.slug,
            "event_id": d.event_id,
            "reason": d.reason,
            "noticed_at": d.noticed_at.isoformat(),
        }
        for d in app.read_model.degraded()
    ]
    body = {
        "status": "degraded" if degraded else "ok",
        "store": app.store.kind,
        "events": events,
        "position": position,
        "degraded": degraded,
    }
    if degraded:
        return JSONResponse(body, status_code=503)
    return body
