"""The audit reads: the latest signed checkpoint, a city's replay, and what changed
in a city's record between two record times."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from dateline.api import audit_views
from dateline.api.audit_schemas import CheckpointOut, DiffOut, ReplayEventOut
from dateline.api.auth import Reader
from dateline.api.errors import ApiError, field_error
from dateline.api.routers.deps import AppDep, KnownAt, Slug
from dateline.api.schemas import ErrorOut, Instant
from dateline.infrastructure.audit.service import latest_checkpoint

router = APIRouter(tags=["audit"])


@router.get(
    "/audit/checkpoint",
    response_model=CheckpointOut,
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
    return checkpoint.as_dict()


@router.get(
    "/cities/{slug}/audit",
    response_model=list[ReplayEventOut],
    summary="The auditor's replay: every event with its context, rule, effect and log entry",
    responses={404: {"model": ErrorOut, "description": "unknown city"}},
)
def get_replay(
    slug: Slug, app: AppDep, _: Reader, known_at: KnownAt = None
) -> list[dict[str, Any]]:
    return audit_views.replay(app, slug, known_at)


@router.get(
    "/cities/{slug}/audit/diff",
    response_model=DiffOut,
    summary="Events recorded and retracted between two record times, and what changed",
    responses={404: {"model": ErrorOut, "description": "unknown city"}},
)
def get_diff(
    slug: Slug,
    app: AppDep,
    _: Reader,
    start: Annotated[Instant, Query(alias="from", description="ISO 8601 instant")],
    end: Annotated[Instant, Query(alias="to", description="ISO 8601 instant")],
) -> dict[str, Any]:
    if end < start:
        raise field_error(["query", "to"], "to must not be before from")
    return audit_views.diff(app, slug, start, end)
