"""The log as auditors read it: every event in recording order, retractions attached."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from dateline.domain.city import City, event_id
from dateline.domain.control import Source


@dataclass(frozen=True, slots=True)
class Retraction:
    event_id: str  # the Retracted event's own id
    reason: str
    retracted_by: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    id: str
    city: str
    type: str  # Registered | Contested | Captured | Retaken | Retracted
    version: int
    recorded_at: datetime
    occurred_on: date | None = None
    actor: str | None = None
    source: Source | None = None
    note: str | None = None
    report_id: str | None = None
    reported_by: str | None = None
    retracts: str | None = None  # for a Retracted event: the event it withdraws
    reason: str | None = None
    retracted: Retraction | None = None  # for a control event withdrawn later

    @property
    def is_control_event(self) -> bool:
        return self.type in ("Contested", "Captured", "Retaken")


def read_log(slug: str, events: Iterable[Any]) -> list[LoggedEvent]:
    """Describe a city's stored events; `events` are in recording order."""
    logged: list[LoggedEvent] = []
    position: dict[str, int] = {}
    for e in events:
        item = log_entry(slug, e)
        own_id = item.id
        if isinstance(e, City.Retracted):
            target = position.get(e.event_id)
            if target is not None:
                withdrawn = logged[target]
                logged[target] = _with_retraction(
                    withdrawn, Retraction(own_id, e.reason, e.retracted_by, e.timestamp)
                )
        position[own_id] = len(logged)
        logged.append(item)
    return logged


def log_entry(slug: str, e: Any) -> LoggedEvent:
    """One stored event as the log describes it, before any later retraction."""
    own_id = event_id(slug, e.originator_version)
    if isinstance(e, City.ControlEvent):
        return LoggedEvent(
            own_id,
            slug,
            type(e).__name__,
            e.originator_version,
            e.timestamp,
            occurred_on=e.occurred_on,
            actor=e.actor,
            source=Source(e.source_name, e.source_url, e.source_quote),
            note=e.note,
            report_id=e.report_id,
            reported_by=e.reported_by,
        )
    if isinstance(e, City.Registered):
        return LoggedEvent(
            own_id,
            slug,
            "Registered",
            e.originator_version,
            e.timestamp,
            occurred_on=e.tracked_since,
            actor=e.initial_controller,
        )
    if isinstance(e, City.Retracted):
        return LoggedEvent(
            own_id,
            slug,
            "Retracted",
            e.originator_version,
            e.timestamp,
            reported_by=e.retracted_by,
            retracts=e.event_id,
            reason=e.reason,
        )
    # An event type this version does not know: show it, do not hide it.
    return LoggedEvent(own_id, slug, type(e).__name__, e.originator_version, e.timestamp)


def _with_retraction(event: LoggedEvent, retraction: Retraction) -> LoggedEvent:
    from dataclasses import replace

    return replace(event, retracted=retraction)
