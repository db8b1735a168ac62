"""Audit operations on a store: verify the log, take and read signed checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from dateline.infrastructure.audit import checkpoints
from dateline.infrastructure.audit.chain import Anchor, verify
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

    def summary(self) -> str:
        if self.intact:
            against = ""
            if self.checkpoints_checked:
                against = f"; extends {', '.join(self.checkpoints_checked)}"
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
            "first_bad_event": self.problem,
        }


def stored_anchor(row: StoredCheckpoint, public_key: str | None) -> Anchor:
    """A checkpoint kept in the database, as an anchor; its signature must hold."""
    checkpoint = Checkpoint(row.size, row.head, row.created_at, row.public_key, row.signature)
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
        anchors = [stored_anchor(row, public_key) for row in db.checkpoints(conn)]
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
        verdict = verify(db.events(conn), db.entries(conn), anchors, name, indexed)
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
    )


def take_checkpoint(store: StoreConfig, key_file: Path, moment: datetime) -> Checkpoint:
    """Sign the log's current size and head, keep it in the database, return it."""
    key = checkpoints.load_private_key(key_file)
    db = AuditDatabase(store)
    with db.connect() as conn:
        size, head = db.head(conn)
        checkpoint = checkpoints.sign(key, size, head.hex(), moment)
        db.save_checkpoint(
            conn,
            checkpoint.size,
            checkpoint.head,
            checkpoint.created_at,
            checkpoint.public_key,
            checkpoint.signature,
        )
    return checkpoint


def latest_checkpoint(store: StoreConfig) -> Checkpoint | None:
    db = AuditDatabase(store)
    with db.connect() as conn:
        rows = db.checkpoints(conn, latest_only=True)
    if not rows:
        return None
    r = rows[0]
    return Checkpoint(r.size, r.head, r.created_at, r.public_key, r.signature)
