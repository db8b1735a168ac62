"""A city's log: read it, report a control event, retract one."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request, Response

from dateline.api.auth import Editor, Reader, Reporter
from dateline.api.errors import ApiError, etag, field_error, rule_conflict
from dateline.api.pagination import MAX_PAGE_SIZE, After, Limit, paginate
from dateline.api.routers.deps import (
    AppDep,
    EventId,
    IdempotencyKey,
    IfMatch,
    KnownAt,
    Slug,
    expected_version,
    resolve_known_at,
)
from dateline.api.schemas import (
    ErrorOut,
    EventOut,
    ReportIn,
    RetractionIn,
    ValidationErrorOut,
    printable,
)
from dateline.domain.control import Source
from dateline.domain.errors import ControlRuleViolation, InvalidReport, VersionMismatch
from dateline.infrastructure.application import AppendResult, Dateline

router = APIRouter(tags=["events"])

WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the body is not a JSON object, or a bad If-Match"},
    401: {"model": ErrorOut, "description": "no token, or an unknown or revoked one"},
    403: {"model": ErrorOut, "description": "the token's role is too low"},
    404: {"model": ErrorOut, "description": "no such city (or event)"},
    409: {
        "model": ErrorOut,
        "description": "the event breaks a rule of control (`rule`, `conflicting_event`), "
        "or concurrent writers kept the city moving: retry",
    },
    412: {"model": ErrorOut, "description": "If-Match names an older version of the city"},
    413: {"model": ErrorOut, "description": "the body is over 64 KiB"},
    422: {"model": ValidationErrorOut, "description": "a field is invalid; `detail` names it"},
}


@router.get(
    "/cities/{slug}/events",
    response_model=list[EventOut],
    summary="The city's log in recording order, as it stood at `known_at`",
    description=f"Paginated: at most `limit` events (max {MAX_PAGE_SIZE}) after the event id "
    '`after`; `Link: rel="next"` gives the next page, with the first page\'s `known_at`.',
    responses={
        404: {"model": ErrorOut, "description": "no such city"},
        422: {"model": ValidationErrorOut, "description": "a bad query parameter"},
    },
)
def list_events(
    slug: Slug,
    app: AppDep,
    request: Request,
    response: Response,
    _: Reader,
    known_at: KnownAt = None,
    limit: Limit = MAX_PAGE_SIZE,
    after: After = None,
) -> list[EventOut]:
    known = resolve_known_at(app, known_at)
    events = app.read_model.history(slug, known)
    response.headers["ETag"] = etag(events[-1].version if events else 0)
    page = paginate(
        events,
        [e.id for e in events],
        after=after,
        limit=limit,
        request=request,
        response=response,
        pinned={"known_at": known.isoformat()},
    )
    return [EventOut.model_validate(e) for e in page]


@router.get(
    "/cities/{slug}/events/{event_id}",
    response_model=EventOut,
    summary="One event of the city's log, as it stands now",
    responses={404: {"model": ErrorOut, "description": "no such city or event"}},
)
def get_event(slug: Slug, event_id: EventId, app: AppDep, _: Reader) -> EventOut:
    prefix, _dash, number = event_id.rpartition("-")
    event = None
    if prefix == slug and number.isascii() and number.isdigit() and len(number) <= 18:
        event = app.read_model.event(slug, int(number))
    if event is None:
        app.read_model.city(slug)  # an unknown city is a 404 naming the city
        raise ApiError(404, f"{slug} has no event {event_id!r}: see GET /cities/{slug}/events")
    return EventOut.model_validate(event)


@router.post(
    "/cities/{slug}/events",
    status_code=201,
    response_model=EventOut,
    summary="Report a Contested, Captured or Retaken event (reporter)",
    description="201 with the new event and its `Location`. A repeat of a known `report_id` "
    "(or `Idempotency-Key`) answers 200 with the original event and writes nothing. "
    "`reported_by` is the token's name.",
    responses={
        200: {"model": EventOut, "description": "a repeat: nothing written"},
        **WRITE_ERRORS,
    },
)
def report_event(
    slug: Slug,
    body: ReportIn,
    app: AppDep,
    request: Request,
    response: Response,
    principal: Reporter,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> EventOut:
    assert principal.name is not None
    report_id = body.report_id
    if idempotency_key is not None:
        try:
            printable(idempotency_key)
        except ValueError as bad:
            raise field_error(("header", "idempotency-key"), str(bad)) from None
        if report_id is not None and report_id != idempotency_key:
            raise field_error(
                ("header", "idempotency-key"),
                f"Idempotency-Key {idempotency_key!r} differs from report_id {report_id!r}: "
                "send one, or the same value in both",
            )
        report_id = idempotency_key
    expected = expected_version(if_match)

    def report(expected: int | None) -> AppendResult:
        return app.report(
            slug,
            body.type,
            occurred_on=body.occurred_on,
            actor=body.actor,
            source=Source(body.source.name, body.source.url, body.source.quote),
            reported_by=principal.name or "",
            note=body.note,
            report_id=report_id,
            expected_version=expected,
        )

    try:
        try:
            result = report(expected)
        except VersionMismatch:
            # A retry of a request that was stored (its answer lost) carries the
            # If-Match it was decided on: answer with the original, as for any repeat.
            if report_id is None or not has_report(app, slug, report_id):
                raise
            result = report(None)
    except ControlRuleViolation as broken:
        raise rule_conflict(
            broken, conflicting_event(app, slug, body.occurred_on, broken)
        ) from None
    except InvalidReport as invalid:
        if invalid.field == "report_id" and body.report_id is None:
            raise field_error(("header", "idempotency-key"), invalid.message) from None
        raise
    response.status_code = 201 if result.created else 200
    location = request.url_for("get_event", slug=slug, event_id=result.event.id)
    response.headers["Location"] = str(location)
    response.headers["ETag"] = etag(result.version)
    return EventOut.model_validate(result.event)


@router.post(
    "/cities/{slug}/events/{event_id}/retraction",
    status_code=201,
    response_model=EventOut,
    summary="Retract a control event, with the reason (editor)",
    description="201 with the Retracted event. The withdrawn event stays in the log with "
    "its `retracted` record; `retracted_by` is the token's name. 409 if it is already "
    "retracted, or if a later event would lose its footing.",
    responses=WRITE_ERRORS,
)
def retract_event(
    slug: Slug,
    event_id: EventId,
    body: RetractionIn,
    app: AppDep,
    request: Request,
    response: Response,
    principal: Editor,
    if_match: IfMatch = None,
) -> EventOut:
    assert principal.name is not None
    result = app.retract(
        slug,
        event_id,
        reason=body.reason,
        retracted_by=principal.name,
        expected_version=expected_version(if_match),
    )
    location = request.url_for("get_event", slug=slug, event_id=result.event.id)
    response.headers["Location"] = str(location)
    response.headers["ETag"] = etag(result.version)
    return EventOut.model_validate(result.event)


def has_report(app: Dateline, slug: str, report_id: str) -> bool:
    return app.read_model.event_by_report(slug, report_id) is not None


def conflicting_event(
    app: Dateline, slug: str, occurred_on: date, broken: ControlRuleViolation
) -> str | None:
    """The event already in the log that the report collides with: a later event it
    would break, or the one that made the city's state on that date what it is."""
    if broken.is_later_event:
        return broken.event_id
    try:
        return app.read_model.status(slug, occurred_on).state.event_id
    except Exception:  # naming the conflict is a courtesy; the 409 stands without it
        return None
