"""The hash-linked log: what an entry hashes, and the check that re-derives it.

Entry n of the log is for the n-th event in notification (recording) order:

    event_hash = SHA-256("dateline-event-v1" 0x00 || city id (16 bytes)
                         || version (8 bytes, big-endian)
                         || len(topic) (2 bytes) || topic (UTF-8) || stored state bytes)
    entry_hash = SHA-256(previous entry_hash || event_hash), the first one after 32 zero bytes

The event hash covers the exact bytes the store holds (the library's compact
JSON of every field: occurred_on, actor, source, note, report_id, reported_by,
retraction fields, timestamp), framed so that no two events share an input;
docs/decisions.md (decision 17) says why this and not RFC 8785 over decoded fields.

Pure: no SQL, no clock. `verify` is fed events (with their recomputed hashes)
and entries in order by the store module and stops at the first bad event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from uuid import UUID

GENESIS = bytes(32)
EVENT_DOMAIN = b"dateline-event-v1\x00"

# What differs, as verify names it.
CONTENT_CHANGED = "content changed"
ENTRY_MISSING = "entry missing"
EVENT_MISSING = "event missing"
ORDER_BROKEN = "order broken"
ENTRY_ALTERED = "entry altered"
NOT_EXTENDING = "does not extend checkpoint"


def event_hash(city_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    topic_bytes = topic.encode("utf-8")
    return hashlib.sha256(
        EVENT_DOMAIN
        + city_id.bytes
        + version.to_bytes(8, "big")
        + len(topic_bytes).to_bytes(2, "big")
        + topic_bytes
        + state
    ).digest()


def entry_hash(previous: bytes, event: bytes) -> bytes:
    return hashlib.sha256(previous + event).digest()


def chain(previous: bytes, event_hashes: Iterable[bytes]) -> Iterator[bytes]:
    """The entry hashes that follow `previous` for these event hashes, in order."""
    for h in event_hashes:
        previous = entry_hash(previous, h)
        yield previous


# An event as read for the check: (notification id, city id (16 bytes), version, its
# hash recomputed from the stored row by `event_hash` or the same formula in SQL).
EventRow = tuple[int, bytes, int, bytes]
# An entry as stored: (position, notification id, city id (16 bytes), version,
# event hash, entry hash).
EntryRow = tuple[int, int, bytes, int, bytes, bytes]


@dataclass(frozen=True, slots=True)
class Finding:
    """The first bad event: where, which, and what differs."""

    what: str
    position: int  # the log entry's position (1-based) where it shows
    notification_id: int | None
    city_id: bytes | None
    version: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Anchor:
    """A log size and the head hash it must have there (a signed checkpoint)."""

    size: int
    head: bytes
    label: str  # how to name it in a finding, e.g. "checkpoint 3 (2026-11-26T02:00:00Z)"


@dataclass
class Verdict:
    events: int = 0
    entries: int = 0
    head: bytes = GENESIS
    finding: Finding | None = None
    anchors_checked: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.finding is None


def verify(
    events: Iterable[EventRow],
    entries: Iterable[EntryRow],
    anchors: Iterable[Anchor] = (),
    name: Callable[[bytes, int], str] = lambda c, v: f"{UUID(bytes=c)}-{v}",
    indexed: Mapping[bytes, int] | None = None,
) -> Verdict:
    """Re-derive every entry from the stored events; stop at the first bad one.

    Checks, per step: every event has an entry and every entry its event (merged
    on notification id), the entry names the same (city, version), each city's
    versions run 1, 2, 3..., the event hashes as recorded, positions run 1, 2,
    3..., and the entry links to the one before. Anchors (checkpoints) must
    match the head at their size, and the log must reach their size. `indexed`
    (city -> last version in the event index, guarded like the log) catches the
    last events of a city deleted together with their entries."""
    verdict = Verdict()
    by_size = {a.size: a for a in anchors}
    last_version: dict[bytes, int] = {}
    previous = GENESIS
    ev_iter: Iterator[EventRow] = iter(events)
    en_iter = iter(entries)
    ev = next(ev_iter, None)
    en = next(en_iter, None)
    position = 0
    sha256 = hashlib.sha256

    def found(what: str, nid: int | None, cid: bytes | None, v: int | None, detail: str) -> Verdict:
        verdict.finding = Finding(what, position, nid, cid, v, detail)
        verdict.head = previous
        return verdict

    while ev is not None or en is not None:
        position += 1
        if en is None or (ev is not None and ev[0] < en[1]):
            assert ev is not None
            nid, cid, v = ev[0], ev[1], ev[2]
            return found(
                ENTRY_MISSING, nid, cid, v, f"{name(cid, v)} is stored but has no log entry"
            )
        if ev is None or en[1] < ev[0]:
            nid, cid, v = en[1], en[2], en[3]
            return found(
                EVENT_MISSING,
                nid,
                cid,
                v,
                f"the log's entry {en[0]} records {name(cid, v)}, which is no longer stored",
            )
        nid, cid, v, h = ev
        if (en[2], en[3]) != (cid, v):
            return found(
                ORDER_BROKEN,
                nid,
                cid,
                v,
                f"notification {nid} holds {name(cid, v)} but the log's entry {en[0]} "
                f"recorded {name(en[2], en[3])} there",
            )
        expected = last_version.get(cid, 0) + 1
        if v != expected:
            if v > expected:
                missing = name(cid, expected)
                if v > expected + 1:
                    missing += f" to {name(cid, v - 1)}"
                return found(EVENT_MISSING, nid, cid, v, f"{missing} missing before {name(cid, v)}")
            return found(
                ORDER_BROKEN, nid, cid, v, f"{name(cid, v)} comes after {name(cid, expected - 1)}"
            )
        last_version[cid] = v
        if h != en[4]:
            return found(
                CONTENT_CHANGED,
                nid,
                cid,
                v,
                f"{name(cid, v)} no longer hashes to its log entry {en[0]}: "
                f"stored {en[4].hex()[:16]}..., recomputed {h.hex()[:16]}...",
            )
        if en[0] != position:
            gap = (
                f"entry {position}" if en[0] == position + 1 else f"entries {position}-{en[0] - 1}"
            )
            # Which event went with it shows later, as a gap in its city's versions.
            later = _first_version_gap(ev_iter, dict(last_version))
            if later is not None:
                lost, follower = later
                return found(
                    EVENT_MISSING,
                    follower[0],
                    lost[0],
                    lost[1],
                    f"log {gap} and {name(*lost)} are missing "
                    f"({name(*follower[1:])} follows {name(lost[0], lost[1] - 1)})",
                )
            return found(
                ENTRY_MISSING, nid, cid, v, f"log {gap} missing before {name(cid, v)}'s entry"
            )
        linked = sha256(previous + h).digest()
        if linked != en[5]:
            return found(
                ENTRY_ALTERED,
                nid,
                cid,
                v,
                f"the log's entry {en[0]} for {name(cid, v)} does not link to the entry before it",
            )
        previous = linked
        anchor = by_size.get(position)
        if anchor is not None:
            if anchor.head != linked:
                return found(
                    NOT_EXTENDING,
                    nid,
                    cid,
                    v,
                    f"history up to {name(cid, v)} (entry {position}) was rewritten: "
                    f"{anchor.label} signed head {anchor.head.hex()[:16]}... at this size, "
                    f"the log now has {linked.hex()[:16]}...",
                )
            verdict.anchors_checked.append(anchor.label)
        verdict.events += 1
        verdict.entries += 1
        ev = next(ev_iter, None)
        en = next(en_iter, None)

    verdict.head = previous
    for cid, version in sorted((indexed or {}).items()):
        have = last_version.get(cid, 0)
        if version > have:
            missing = name(cid, have + 1) + (
                f" to {name(cid, version)}" if version > have + 1 else ""
            )
            verdict.finding = Finding(
                EVENT_MISSING,
                position,
                None,
                cid,
                have + 1,
                f"{missing} is in the event index but neither stored nor in the log "
                "(deleted with its entry)",
            )
            return verdict
    beyond = [a for a in by_size.values() if a.size > position]
    if beyond:
        anchor = max(beyond, key=lambda a: a.size)
        verdict.finding = Finding(
            NOT_EXTENDING,
            position + 1,
            None,
            None,
            None,
            f"the log holds {position} entries but {anchor.label} covers {anchor.size}: "
            f"entries {position + 1} to {anchor.size} are gone (a rollback or a restored backup)",
        )
    return verdict


def _first_version_gap(
    events: Iterator[EventRow], last_version: dict[bytes, int]
) -> tuple[tuple[bytes, int], tuple[int, bytes, int]] | None:
    """The first (city, missing version) in the rest of the events, and the event after it."""
    for nid, cid, v, _ in events:
        if v > last_version.get(cid, 0) + 1:
            return (cid, last_version.get(cid, 0) + 1), (nid, cid, v)
        last_version[cid] = v
    return None
