"""Response bodies of the audit endpoints, with examples from the Kunduz seeds."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import ConfigDict, Field

from dateline.api.schemas import KUNDUZ_EVENT, EventOut, Response

CONTESTED: dict[str, Any] = {
    "status": "contested", "controller": "Afghan government", "contested_by": "Taliban",
    "since": "2015-09-28", "event_id": "kunduz-2",
}  # fmt: skip
HELD_TALIBAN: dict[str, Any] = {
    "status": "held", "controller": "Taliban", "contested_by": None,
    "since": "2015-09-28", "event_id": "kunduz-3",
}  # fmt: skip
CHANGE: dict[str, Any] = {
    "from": "2015-09-28", "to": "2015-10-01", "before": CONTESTED, "after": HELD_TALIBAN,
}  # fmt: skip
KUNDUZ_CHECKPOINT: dict[str, Any] = {
    "size": 89,
    "head": "cc7055c3de126050a9f3b1e2d4c5b6a7980f1e2d3c4b5a69788796a5b4c3d2e1",
    "created_at": "2021-09-01T12:00:00.000000Z",
    "public_key": "91ac8ed0f4c1ddfb4fde6569f8f0a545a140052cfd246a6a3b92ea05b288c949",
    "signature": "5d0c" + "0" * 124,
    "format": "dateline-checkpoint/2",
    "cities": 32,
    "cities_root": "4f1e0c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f",
}
KUNDUZ_REPLAY: dict[str, Any] = {
    **KUNDUZ_EVENT,
    "day": "2015-09-28",
    "state_before": CONTESTED,
    "state_after": HELD_TALIBAN,
    "admitted_by": "captured-by-other: Taliban does not control Kunduz on 2015-09-28",
    "changed": [{**CHANGE, "to": None}],
    "log": {
        "position": 3,
        "event_hash": "139ac301037e03ec1b3fd3b6431890d82ac3b73bf89c06cffb6034be984e7a58",
        "entry_hash": "f39e6ed8683b4608a20090309511f220ddaa3264f9b89c008599d3127bc7c41d",
    },
}


class CheckpointOut(Response):
    """A signed checkpoint: the log's size and head hash, and the Merkle root over every
    city's event count and head, Ed25519-signed over the RFC 8785 JSON of format, size,
    head, created_at, cities and cities_root (format 1, older: without the two)."""

    model_config = ConfigDict(json_schema_extra={"examples": [KUNDUZ_CHECKPOINT]})

    size: int
    head: str
    created_at: str
    public_key: str
    signature: str
    format: str
    cities: int | None = Field(default=None, description="format 2: leaves under cities_root")
    cities_root: str | None = Field(
        default=None, description="format 2: RFC 9162 Merkle root over (city id, events, head)"
    )


class StateOut(Response):
    model_config = ConfigDict(json_schema_extra={"examples": [HELD_TALIBAN]})

    status: str
    controller: str | None
    contested_by: str | None
    since: date | None
    event_id: str | None


class ChangeOut(Response):
    """A run of days [from, to) whose answer differs (`to` null: open-ended)."""

    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [CHANGE]})

    from_: date = Field(alias="from")
    to: date | None
    before: StateOut
    after: StateOut


class LogEntryOut(Response):
    position: int
    event_hash: str
    entry_hash: str


class ReplayEventOut(EventOut):
    """One event as the auditor replays it."""

    model_config = ConfigDict(json_schema_extra={"examples": [KUNDUZ_REPLAY]})

    day: date | None = Field(description="the day it is about (a retraction: its target's)")
    state_before: StateOut | None = Field(description="that day, as known just before")
    state_after: StateOut | None = Field(description="that day, as known just after")
    admitted_by: str | None = Field(description="the rule of control that admitted it")
    changed: list[ChangeOut] = Field(description="every run of days whose answer it changed")
    log: LogEntryOut | None = Field(description="its entry in the hash-linked log")


class DiffOut(Response):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "city": "kunduz",
                    "from": "2021-09-01T00:00:00Z",
                    "to": "2021-09-02T00:00:00Z",
                    "recorded": [KUNDUZ_EVENT],
                    "retracted": [],
                    "changed": [CHANGE],
                }
            ]
        },
    )

    city: str
    from_: datetime = Field(alias="from")
    to: datetime
    recorded: list[EventOut]
    retracted: list[EventOut]
    changed: list[ChangeOut]
