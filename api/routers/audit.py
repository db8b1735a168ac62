"""GET /audit/checkpoint: the latest signed checkpoint of the hash-linked log."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from api.auth import Reader
from api.errors import ApiError
from api.routers.deps import AppDep
from api.schemas import ErrorOut
from infrastructure.audit.service import latest_checkpoint

router = APIRouter(tags=["audit"])


@router.get(
    "/audit/checkpoint",
    summary="The latest signed checkpoint (log size and head hash, Ed25519)",
    responses={404: {"model": ErrorOut, "description": "no checkpoint has been signed yet"}},
)
def get_checkpoint(app: AppDep, _: Reader) -> dict[str, Any]:
    checkpoint = latest_checkpoint(app.store)
    if checkpoint is None:
        raise ApiError(
            404,
            "no checkpoint has been signed yet: run `dateline audit checkpoint` "
            "(DATELINE_AUDIT_KEY_FILE) or let the service sign one",
        )
    return asdict(checkpoint)
