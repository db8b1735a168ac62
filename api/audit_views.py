"""The auditor's replay and the record's diff, as plain dicts for HTTP and the command line.

Replay: every event of a city in recording order, with who recorded it, when,
from which source, the city's state on the event's day just before and just
after it was recorded, the rule that admitted it, the answers it changed for
other days, and its place in the hash-linked log.
Diff: the events recorded and retracted between two record times, and every
run of days whose answer differs between "as known at T1" and "as known at T2".
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from dateline.api.schemas import EventOut, dump
from dateline.domain.changes import Change, changes
from dateline.domain.city import city_id
from dateline.domain.control import ControlState, Status
from dateline.domain.log import LoggedEvent
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.audit.store import AuditDatabase

JUST_BEFORE = timedelta(microseconds=1)


def state_dict(state: ControlState) -> dict[str, Any]:
    return {
        "status": state.status.value,
        "controller": state.controller,
        "contested_by": state.contested_by,
        "since": state.since.isoformat() if state.since else None,
        "event_id": state.event_id,
    }


def change_dict(change: Change) -> dict[str, Any]:
    return {
        "from": change.start.isoformat(),
        "to": change.end.isoformat() if change.end else None,
        "before": state_dict(change.before),
        "after": state_dict(change.after),
    }


def admitted_by(event: LoggedEvent, before: ControlState, city: str) -> str:
    """The rule of control under which the record accepted the event."""
    actor, on = event.actor, event.occurred_on
    if event.type == "Registered":
        return f"registration: the record of {city} begins on {on}, held by {actor}"
    if event.type == "Retracted":
        return (
            f"retraction: withdraws {event.retracts}; no later event of {city} "
            "loses its footing without it"
        )
    if event.type == "Contested":
        if before.status is Status.CONTESTED and before.contested_by == actor:
            return (
                f"corroboration: another report of {actor}'s assault, under way since "
                f"{before.since}"
            )
        return f"contested-by-other: {actor} does not control {city} on {on}"
    if event.type == "Captured":
        return f"captured-by-other: {actor} does not control {city} on {on}"
    if before.status is Status.CONTESTED and before.controller == actor:
        return f"retaken-repelled: {actor} held {city} on {on} and repelled {before.contested_by}"
    return f"retaken-recapture: {actor} held {city} before {on} and has it back"


def hashes(app: Dateline, slug: str) -> dict[int, dict[str, Any]]:
    db = AuditDatabase(app.store)
    with db.connect() as conn:
        rows = db.city_entries(conn, city_id(slug))
    return {
        version: {"position": position, "event_hash": eh.hex(), "entry_hash": h.hex()}
        for position, version, eh, h in rows
    }


def replay(app: Dateline, slug: str, known_at: datetime | None = None) -> list[dict[str, Any]]:
    events = app.history(slug, known_at)
    days: dict[str, date | None] = {e.id: e.occurred_on for e in events}
    entries = hashes(app, slug)
    name = app.city(slug).name
    out = []
    for e in events:
        day = e.occurred_on or (days.get(e.retracts) if e.retracts else None)
        after_at, before_at = e.recorded_at, e.recorded_at - JUST_BEFORE
        before = app.status(slug, day, before_at).state if day else None
        after = app.status(slug, day, after_at).state if day else None
        _, old = app.timeline(slug, before_at)
        _, new = app.timeline(slug, after_at)
        row = dump(EventOut, e)
        row.update(
            {
                "day": day.isoformat() if day else None,
                "state_before": state_dict(before) if before else None,
                "state_after": state_dict(after) if after else None,
                "admitted_by": admitted_by(e, before, name) if before else None,
                "changed": [change_dict(c) for c in changes(old, new)],
                "log": entries.get(e.version),
            }
        )
        out.append(row)
    return out


def diff(app: Dateline, slug: str, start: datetime, end: datetime) -> dict[str, Any]:
    events = app.history(slug, end)
    recorded = [e for e in events if start < e.recorded_at <= end]
    _, old = app.timeline(slug, start)
    _, new = app.timeline(slug, end)
    return {
        "city": slug,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "recorded": [dump(EventOut, e) for e in recorded if e.type != "Retracted"],
        "retracted": [dump(EventOut, e) for e in recorded if e.type == "Retracted"],
        "changed": [change_dict(c) for c in changes(old, new)],
    }
