"""From exceptions to HTTP answers: a status code and a `detail` a person can act on.

400 malformed body, 401/403 token, 404 unknown city or event, 409 rules of
control or a concurrent writer, 412 a stale If-Match, 413 body too large, 422
a field (`detail` is a list of {loc, field, msg, type}), 503 the store is
unavailable. Anything else is a bug: a 500 that says so, logged with its trace.
"""

from __future__ import annotations

import difflib
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dateline.domain.errors import (
    AlreadyRetracted,
    CityAlreadyExists,
    CityNotFound,
    ControlRuleViolation,
    InvalidReport,
    UnknownEvent,
    VersionMismatch,
)
from dateline.infrastructure.application import ConcurrencyConflict, StoreUnavailable
from dateline.infrastructure.read_model.queries import CityDegraded

log = logging.getLogger("dateline.api")

MAX_BODY_BYTES = 64 * 1024
# Extra fields a client might send that the server sets itself.
SERVER_SET_FIELDS = {
    "reported_by": "reported_by is set from your token's name; do not send it",
    "retracted_by": "retracted_by is set from your token's name; do not send it",
    "recorded_at": "recorded_at is set by the server when the event is stored; do not send it",
    "id": "event ids are assigned by the server; do not send one",
}


class ApiError(Exception):
    """An answer decided by an endpoint: status, detail, optional headers and fields."""

    def __init__(
        self,
        status_code: int,
        detail: Any,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(str(detail))
        self.status_code = status_code
        self.detail = detail
        self.headers = headers
        self.extra = extra


def field_item(loc: Sequence[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    named = [str(part) for part in loc[1:] if not isinstance(part, int)] or [str(loc[-1])]
    return {"loc": list(loc), "field": ".".join(named), "msg": msg, "type": kind}


def field_error(loc: Sequence[str | int], msg: str, kind: str = "value_error") -> ApiError:
    """A 422 naming one field, shaped like FastAPI's validation errors."""
    return ApiError(422, [field_item(loc, msg, kind)])


def rule_conflict(broken: ControlRuleViolation, conflicting_event: str | None) -> ApiError:
    conflict = f" (conflicts with {conflicting_event})" if conflicting_event else ""
    return ApiError(
        409,
        f"{broken.rule}: {broken.message}{conflict}",
        rule=broken.rule,
        conflicting_event=conflicting_event,
        is_later_event=broken.is_later_event,
    )


def etag(version: int) -> str:
    return f'"{version}"'


def error_response(
    status_code: int, detail: Any, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status_code, headers=headers)


# ------------------------------------------------------------------ handlers
async def api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.detail, exc.headers, **exc.extra)


async def invalid_report(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidReport)
    loc: list[str | int] = ["body", *exc.field.split(".")]
    return error_response(422, [field_item(loc, exc.message, "invalid_report")])


def city_not_found(request: Request, exc: Exception) -> JSONResponse:
    """404, with the closest registered slug when there is one (runs in the threadpool)."""
    assert isinstance(exc, CityNotFound)
    hint = ""
    try:
        slugs = request.app.state.dateline.city_slugs()
        close = difflib.get_close_matches(exc.slug, slugs, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else " (see GET /cities)"
    except Exception:  # the hint is a courtesy; never hide the 404 behind it
        log.exception("could not suggest a city slug")
    return error_response(404, exc.message + hint)


async def unknown_event(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownEvent)
    return error_response(
        404, f"{exc.message}: see GET /cities/{exc.city}/events for its event ids"
    )


async def already_retracted(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AlreadyRetracted)
    return error_response(
        409, f"{exc.message}; a retraction is never repeated", event_id=exc.event_id
    )


async def city_exists(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CityAlreadyExists)
    return error_response(
        409, f"{exc.message}: choose another slug, or report events to /cities/{exc.slug}/events"
    )


async def control_rule(request: Request, exc: Exception) -> JSONResponse:
    """Violations no endpoint enriched (a retraction: the broken event is a later one)."""
    assert isinstance(exc, ControlRuleViolation)
    return await api_error(request, rule_conflict(exc, exc.event_id))


async def version_mismatch(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VersionMismatch)
    return error_response(
        412,
        f"{exc.message} (your If-Match was {etag(exc.expected)})",
        headers={"ETag": etag(exc.actual)},
        current_version=exc.actual,
    )


async def concurrency_conflict(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, str(exc), headers={"Retry-After": "1"})


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("store unavailable: %s: %s", type(exc).__name__, exc)
    return error_response(
        503,
        "the store is busy or unreachable; nothing was written, try again shortly",
        headers={"Retry-After": "2"},
    )


async def city_degraded(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CityDegraded)
    log.warning("read of a degraded city: %s", exc)
    d = exc.degraded
    return error_response(
        503,
        str(exc),
        headers={"Retry-After": "60"},
        city=d.slug,
        event_id=d.event_id,
        reason=d.reason,
    )


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        500,
        "internal error: it has been logged. If this was a write, read the city's events "
        "before retrying, or retry with the same report_id (a stored report is not repeated)",
    )


async def request_validation(request: Request, exc: Exception) -> JSONResponse:
    """Malformed bodies are 400; field problems are 422 naming each field."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            why = (error.get("ctx") or {}).get("error", "JSON decode error")
            position = error["loc"][-1] if len(error.get("loc", ())) > 1 else "?"
            return error_response(
                400, f"the body is not valid JSON: {why} (at character {position})"
            )
    for error in errors:
        if tuple(error.get("loc", ())) == ("body",):
            if error.get("type") == "missing":
                return error_response(400, "a JSON body is required")
            return error_response(
                400,
                "the body must be a JSON object, sent with Content-Type: application/json",
            )
    items = []
    for error in errors:
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        kind = str(error.get("type", "value_error"))
        if kind == "extra_forbidden" and loc and str(loc[-1]) in SERVER_SET_FIELDS:
            msg = SERVER_SET_FIELDS[str(loc[-1])]
        elif kind == "extra_forbidden":
            msg = "unknown field: remove it (see the schema at /docs)"
        items.append(field_item(loc, msg, kind))
    return error_response(422, items)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(InvalidReport, invalid_report)
    app.add_exception_handler(CityNotFound, city_not_found)
    app.add_exception_handler(UnknownEvent, unknown_event)
    app.add_exception_handler(AlreadyRetracted, already_retracted)
    app.add_exception_handler(CityAlreadyExists, city_exists)
    app.add_exception_handler(ControlRuleViolation, control_rule)
    app.add_exception_handler(VersionMismatch, version_mismatch)
    app.add_exception_handler(ConcurrencyConflict, concurrency_conflict)
    app.add_exception_handler(CityDegraded, city_degraded)
    for unavailable in (
        StoreUnavailable,
        OperationalError,
        InterfaceError,
        psycopg.OperationalError,
        sqlite3.OperationalError,
        PoolTimeout,
    ):
        app.add_exception_handler(unavailable, store_unavailable)
    app.add_exception_handler(Exception, internal_error)


# ------------------------------------------------------------ body size limit
class BodySizeLimit:
    """413 for a request body over `max_bytes`, before any endpoint sees it.

    The body (at most `max_bytes`) is read here and handed on whole, so an
    endpoint never meets a half-read stream, and nothing is written."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        chunked = False
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is None and not chunked:  # HTTP/1.1: no body without either header
            await self.app(scope, receive, send)
            return
        if declared is not None and _too_large(declared, self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            f"the request body is over {self.max_bytes // 1024} KiB ({self.max_bytes} bytes); "
            "nothing was read or written",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _too_large(declared: bytes, max_bytes: int) -> bool:
    """A Content-Length over the limit; an absurdly long number is over it too."""
    value = declared.strip()
    if not value.isdigit():  # bytes: ASCII digits only
        return False
    return len(value) > 18 or int(value) > max_bytes
