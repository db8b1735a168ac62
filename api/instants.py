"""How a user writes "known at" a moment: the one rule for the command line and HTTP.

An instant is ISO 8601 with a time zone (`2021-08-08T12:00:00Z`,
`2021-08-08T16:30:00+04:30`). A bare date `YYYY-MM-DD` means the end of that
day, UTC (23:59:59.999999Z): everything recorded on that day counts. A space
where the offset's `+` belongs (what an unencoded query string makes of it) is
read as the `+`. The result is always in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EXAMPLE = "2021-08-08T12:00:00Z"


def end_of_day(day: date) -> datetime:
    """The last instant of `day` in UTC."""
    return datetime.combine(day, time.max, tzinfo=UTC)


def parse_instant(text: str) -> datetime:
    """The instant `text` names, in UTC; ValueError with a message a user can act on."""
    value = text.strip()
    if DAY_PATTERN.match(value):
        try:
            return end_of_day(date.fromisoformat(value))
        except ValueError:
            raise ValueError(f"{text!r} is not a calendar date") from None
    if " " in value and "T" in value:
        value = value.replace(" ", "+")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 instant (e.g. {EXAMPLE}) nor a date YYYY-MM-DD"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or +HH:MM")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range in UTC") from None
