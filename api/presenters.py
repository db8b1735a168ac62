"""Plain-dict views of query results, shared by the command line and HTTP."""

from __future__ import annotations

from typing import Any

from domain.control import ControlInterval
from domain.log import LoggedEvent
from infrastructure.application import CityView, StatusView


def city_dict(city: CityView) -> dict[str, Any]:
    return {
        "slug": city.slug,
        "name": city.name,
        "province": city.province,
        "country": city.country,
        "lat": city.lat,
        "lon": city.lon,
        "population": city.population,
        "initial_controller": city.initial_controller,
        "tracked_since": city.tracked_since.isoformat(),
    }


def status_dict(view: StatusView) -> dict[str, Any]:
    state = view.state
    return {
        "city": view.city.slug,
        "as_of": view.as_of.isoformat(),
        "known_at": view.known_at.isoformat(),
        "status": state.status.value,
        "controller": state.controller,
        "contested_by": state.contested_by,
        "since": state.since.isoformat() if state.since else None,
        "event_id": state.event_id,
        "version": view.version,
    }


def interval_dict(interval: ControlInterval) -> dict[str, Any]:
    state = interval.state
    return {
        "from": interval.start.isoformat(),
        "to": interval.end.isoformat() if interval.end else None,
        "status": state.status.value,
        "controller": state.controller,
        "contested_by": state.contested_by,
        "event_id": state.event_id,
    }


def event_dict(event: LoggedEvent) -> dict[str, Any]:
    source = event.source
    retracted = event.retracted
    return {
        "id": event.id,
        "city": event.city,
        "type": event.type,
        "occurred_on": event.occurred_on.isoformat() if event.occurred_on else None,
        "actor": event.actor,
        "source": (
            {"name": source.name, "url": source.url, "quote": source.quote} if source else None
        ),
        "note": event.note,
        "report_id": event.report_id,
        "reported_by": event.reported_by,
        "recorded_at": event.recorded_at.isoformat(),
        "version": event.version,
        "retracts": event.retracts,
        "reason": event.reason,
        "retracted": (
            {
                "event_id": retracted.event_id,
                "reason": retracted.reason,
                "retracted_by": retracted.retracted_by,
                "recorded_at": retracted.recorded_at.isoformat(),
            }
            if retracted
            else None
        ),
    }
