"""Domain errors: each says what is wrong in words a reporter can act on."""

from __future__ import annotations


class DomainError(Exception):
    """Base class for every rule the domain refuses to break."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidReport(DomainError):
    """A field of a report is unusable (empty actor, date out of range, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ControlRuleViolation(DomainError):
    """An event breaks the rules of control.

    `event_id` names the event whose rule is broken: the new event itself, or an
    event already in the log that a backdated report or a retraction would make
    invalid (then `is_later_event` is true).
    """

    def __init__(
        self, rule: str, message: str, event_id: str | None, *, is_later_event: bool
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.event_id = event_id
        self.is_later_event = is_later_event


class UnknownEvent(DomainError):
    """A retraction names an event that is not a control event of this city."""

    def __init__(self, city: str, event_id: str) -> None:
        super().__init__(f"{city} has no control event {event_id!r}")
        self.city = city
        self.event_id = event_id


class AlreadyRetracted(DomainError):
    """The event was retracted earlier; retractions are not undone or repeated."""

    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(f"event {event_id} is already retracted ({reason})")
        self.event_id = event_id


class CityNotFound(DomainError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"no city {slug!r} is registered")
        self.slug = slug


class CityAlreadyExists(DomainError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"city {slug!r} is already registered")
        self.slug = slug


class VersionMismatch(DomainError):
    """The writer expected an older or newer state of the city than the log holds."""

    def __init__(self, slug: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{slug} is at version {actual}, not {expected}: reload it and decide again"
        )
        self.expected = expected
        self.actual = actual
