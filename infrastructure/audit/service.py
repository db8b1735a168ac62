"""Audit operations on a store: verify the log, take and read signed checkpoints."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from dateline.infrastructure.audit import checkpoints, merkle
from dateline.infrastructure.audit.chain import (
    GENESIS,
    NOT_EXTENDING,
    Anchor,
    EventRow,
    Finding,
    verify,
)
from dateline.infrastructure.audit.checkpoints import Checkpoint, CheckpointError
from dateline.infrastructure.audit.store import AuditDatabase, StoredCheckpoint
from dateline.infrastructure.settings import StoreConfig


@dataclass
class VerifyReport:
    intact: bool
    events: int
    head: str
    seconds: float
    checkpoints_checked: list[str] = field(default_factory=list)
    problem: dict[str, Any] | None = None  # the first bad event
    roots_checked: list[str] = field(default_factory=list)  # cities roots re-derived

    def summary(self) -> str:
        if self.intact:
            against = ""
            if self.checkpoints_checked:
                against = f"; extends {', '.join(self.checkpoints_checked)}"
            if self.roots_checked:
                against += f"; cities root of {', '.join(self.roots_checked)} re-derived"
            return (
                f"intact: {self.events} events, every entry re-derived, head "
                f"{self.head[:16]}...{against} ({self.seconds:.2f} s)"
            )
        assert self.problem is not None
        where = self.problem["event"] or f"entry {self.problem['position']}"
        return f"BROKEN at {where}: {self.problem['what']}: {self.problem['detail']}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "events": self.events,
            "head": self.head,
            "seconds": round(self.seconds, 3),
            "checkpoints_checked": self.checkpoints_checked,
            "cities_roots_checked": self.roots_checked,
            "first_bad_event": self.problem,
        }


def from_row(row: StoredCheckpoint) -> Checkpoint:
    if row.cities_root is None:  # signed before migration 0006: format 1
        return Checkpoint(row.size, row.head, row.created_at, row.public_key, row.signature)
    return Checkpoint(
        row.size, row.head, row.created_at, row.public_key, row.signature,
        checkpoints.FORMAT, row.cities, row.cities_root,
    )  # fmt: skip


def stored_anchor(row: StoredCheckpoint, public_key: str | None) -> Anchor:
    """A checkpoint kept in the database, as an anchor; its signature must hold."""
    checkpoint = from_row(row)
    try:
        checkpoints.check(checkpoint, public_key)
    except CheckpointError as error:
        raise CheckpointError(f"stored checkpoint #{row.id}: {error}") from None
    return Anchor(row.size, bytes.fromhex(row.head), f"stored checkpoint #{row.id}")


def verify_store(
    store: StoreConfig,
    against: Checkpoint | None = None,
    public_key: str | None = None,
) -> VerifyReport:
    """Re-derive the whole log; `against` (a signed checkpoint file) must be extended.

    Checkpoints stored in the database are checked too (their signatures and
    heads), which narrows where a recomputed history begins."""
    if against is not None:
        checkpoints.check(against, public_key)
    db = AuditDatabase(store)
    started = time.perf_counter()
    with db.connect() as conn:
        slugs = db.slugs(conn)
        stored = db.checkpoints(conn)
        anchors = [stored_anchor(row, public_key) for row in stored]
        # The cities roots to re-derive: the latest stored one, and the file's.
        rooted: dict[int, tuple[int, str, str]] = {}
        with_root = [r for r in stored if r.cities_root is not None]
        if with_root:
            r = with_root[-1]
            rooted[r.size] = (int(r.cities or 0), str(r.cities_root), f"stored checkpoint #{r.id}")
        if against is not None and against.cities_root is not None:
            rooted[against.size] = (
                int(against.cities or 0), against.cities_root,
                f"the checkpoint of {against.created_at}",
            )  # fmt: skip
        if against is not None:
            anchors = [a for a in anchors if a.size != against.size]
            anchors.append(
                Anchor(
                    against.size,
                    bytes.fromhex(against.head),
                    f"the checkpoint of {against.created_at}",
                )
            )

        def name(cid: bytes, version: int) -> str:
            slug = slugs.get(cid)
            return f"{slug}-{version}" if slug else f"city {UUID(bytes=cid)} version {version}"

        indexed = db.indexed_versions(conn)
        events: Iterable[EventRow] = db.events(conn)
        folded: list[Finding | None] = []
        if rooted:  # city heads folded from the same stream, in the same pass
            events = fold_roots(events, rooted, folded)
        verdict = verify(events, db.entries(conn), anchors, name, indexed)
        roots: list[str] = []
        if verdict.intact and rooted:  # every event re-derived: the fold was over the log
            finding = next((f for f in folded if f is not None), None)
            if finding is not None:
                verdict.finding = finding
            else:
                roots = [rooted[size][2] for size in sorted(rooted)]
    seconds = time.perf_counter() - started
    problem = None
    if verdict.finding is not None:
        f = verdict.finding
        problem = {
            "what": f.what,
            "event": name(f.city_id, f.version) if f.city_id and f.version else None,
            "city": slugs.get(f.city_id) if f.city_id else None,
            "version": f.version,
            "notification_id": f.notification_id,
            "position": f.position,
            "detail": f.detail,
        }
    return VerifyReport(
        verdict.intact,
        verdict.events,
        verdict.head.hex(),
        seconds,
        verdict.anchors_checked,
        problem,
        roots,
    )


def fold_roots(
    events: Iterable[EventRow],
    rooted: dict[int, tuple[int, str, str]],
    found: list[Finding | None],
) -> Iterator[EventRow]:
    """Pass the events through, folding them into city heads; at each size in
    `rooted` (cities, root, label), append to `found` None if the Merkle root over
    the cities is the one its checkpoint signed, else a finding. Only meaningful
    once verify has found every event in its place."""
    heads: dict[bytes, tuple[int, bytes]] = {}
    sha256 = hashlib.sha256
    last = max(rooted)
    for position, row in enumerate(events, start=1):
        if position <= last:
            cid = row[1]
            heads[cid] = (row[2], sha256(heads.get(cid, (0, GENESIS))[1] + row[3]).digest())
            if position in rooted:
                found.append(_root_finding(heads, position, *rooted[position]))
        yield row


def _root_finding(
    heads: dict[bytes, tuple[int, bytes]], position: int, cities: int, root: str, label: str
) -> Finding | None:
    leaves = [merkle.leaf_hash(merkle.leaf(c, n, hd)) for c, (n, hd) in sorted(heads.items())]
    got = merkle.root(leaves)
    if len(leaves) == cities and got.hex() == root:
        return None
    return Finding(
        NOT_EXTENDING, position, None, None, None,
        f"{label} signed a cities root {root[:16]}... over {cities} cities at size "
        f"{position}; the log's events give {got.hex()[:16]}... over {len(leaves)}",
    )  # fmt: skip


def take_checkpoint(store: StoreConfig, key_file: Path, moment: datetime) -> Checkpoint:
    """Sign the log's current size and head and the root over its cities (folded
    forward from the last checkpoint), keep it in the database, return it.

    `moment` (created_at) is taken before the log is read: an answer known at or
    before it is covered by what the checkpoint signs."""
    key = checkpoints.load_private_key(key_file)
    db = AuditDatabase(store)
    with db.connect() as conn:
        size, head, cities = db.fold_cities(conn)
        tree = merkle.Tree([merkle.leaf_hash(merkle.leaf(*c)) for c in cities])
        checkpoint = checkpoints.sign(key, size, head.hex(), moment, tree.size, tree.root.hex())
        db.save_checkpoint(conn, checkpoint)
    return checkpoint


def latest_checkpoint(store: StoreConfig) -> Checkpoint | None:
    db = AuditDatabase(store)
    with db.connect() as conn:
        rows = db.checkpoints(conn, latest_only=True)
    if not rows:
        return None
    return from_row(rows[0])
