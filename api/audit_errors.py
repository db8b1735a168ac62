"""Damage is named, never a 500: HTTP answers for an undecodable event and a log gap.

Installed after `api.errors.install_error_handlers`, so its ConcurrencyConflict
handler first checks whether the city's log has a gap (a deleted event makes
every append collide forever), and otherwise answers as before."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from dateline.api.errors import concurrency_conflict, error_response
from dateline.infrastructure.application import ConcurrencyConflict
from dateline.infrastructure.audit.damage import UndecodableEvent, log_gap
from dateline.infrastructure.audit.receipts import ReceiptsUnavailable


def undecodable_event(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UndecodableEvent)
    slug = request.path_params.get("slug")
    event_id = f"{slug}-{exc.version}" if slug else None
    return error_response(
        503,
        exc.describe(slug),
        damaged_event=event_id,
        city_id=str(exc.city),
        version=exc.version,
    )


async def conflict_or_gap(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConcurrencyConflict)
    try:
        gap = await run_in_threadpool(log_gap, request.app.state.dateline.store, exc.slug)
    except Exception:  # the check is a courtesy; never hide the 409 behind it
        gap = None
    if gap is not None:
        return error_response(503, gap, damaged_city=exc.slug)
    return await concurrency_conflict(request, exc)


async def receipts_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, str(exc))


def install(app: FastAPI) -> None:
    app.add_exception_handler(UndecodableEvent, undecodable_event)
    app.add_exception_handler(ReceiptsUnavailable, receipts_unavailable)
    app.add_exception_handler(ConcurrencyConflict, conflict_or_gap)
