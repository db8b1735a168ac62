"""Damage in the stored record, named: an event that cannot be decoded, a city whose
log has a gap. Both point to `dateline audit verify`, never to a stack trace."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent

from dateline.domain.city import city_id
from dateline.infrastructure.audit.store import LOG_TABLE, AuditDatabase
from dateline.infrastructure.settings import StoreConfig

VERIFY_HINT = "run `dateline audit verify` to see what was changed"


class UndecodableEvent(MapperDeserialisationError):
    """A stored event no longer decodes: its bytes, type or fields were damaged.
    Still the library's deserialisation error (a ValueError), as its callers expect."""

    def __init__(self, city: UUID, version: int, reason: str) -> None:
        super().__init__(
            f"version {version} of city {city} cannot be decoded ({reason}): "
            f"the stored record is damaged; {VERIFY_HINT}"
        )
        self.city = city
        self.version = version
        self.reason = reason

    def describe(self, slug: str | None) -> str:
        """The message, naming the event by its id when the city's slug is known."""
        if slug is None:
            return str(self)
        return (
            f"{slug}-{self.version} cannot be decoded ({self.reason}): "
            f"the stored record is damaged; {VERIFY_HINT}"
        )


class NamingMapper(Mapper[UUID]):
    """The library's mapper, but a stored event that does not decode is named."""

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        try:
            return super().to_domain_event(stored_event)
        except Exception as error:
            cause = error.__cause__ or error
            reason = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
            raw: Any = stored_event.originator_id
            city = raw if isinstance(raw, UUID) else UUID(str(raw))
            raise UndecodableEvent(city, stored_event.originator_version, reason) from error


def log_gap(store: StoreConfig, slug: str) -> str | None:
    """If the city's stored events stop short of what its index and hash log record,
    or skip a version, say which; None when its log is whole."""
    db = AuditDatabase(store)
    cid = city_id(slug)
    key: Any = cid.hex if store.kind == "sqlite" else cid
    m = db.mark
    with db.connect() as conn:
        events = conn.execute(
            f"SELECT count(*), max(originator_version) FROM {db.events_table} "
            f"WHERE originator_id = {m}",
            (key,),
        ).fetchone()
        recorded = conn.execute(
            f"SELECT max(v) FROM (SELECT max(version) AS v FROM {db.t('dateline_event_index')} "
            f"WHERE city_id = {m} UNION ALL SELECT max(version) FROM {db.t(LOG_TABLE)} "
            f"WHERE city_id = {m}) AS recorded",
            (key, key),
        ).fetchone()
    count, stored = int(events[0] or 0), int(events[1] or 0)
    expected = int(recorded[0] or 0) if recorded else 0
    if stored < expected:
        missing = f"{slug}-{stored + 1}" + (
            f" to {slug}-{expected}" if expected > stored + 1 else ""
        )
        return (
            f"{slug}'s log has a gap: {missing} is recorded in the index and the hash log "
            f"but missing from the stored events, so nothing can be appended after it; "
            f"{VERIFY_HINT}"
        )
    if count < stored:
        return (
            f"{slug}'s log has a gap: {stored - count} of its versions 1 to {stored} are "
            f"missing from the stored events; {VERIFY_HINT}"
        )
    return None
