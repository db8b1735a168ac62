"""Receipts: a status answer that can be checked later, offline, by anyone.

A receipt (format 2) carries the answer; every event of the city in the log at
a signed checkpoint, exactly as stored (type and bytes), with its hash; the
city's leaf (its event count and city head) and the Merkle inclusion proof of
that leaf under the checkpoint's cities root; the checkpoint itself (signed);
the log's size and head when the receipt was signed; and the operator's
Ed25519 signature over all of it (RFC 8785).

`check` needs no database. It re-hashes every event, checks the versions run
1..N, chains them into the city head, hashes the leaf up the proof to the
checkpoint's root and checks the checkpoint's signature: so the city had
exactly these N events at that checkpoint, none left out. Then it decodes the
events, takes those recorded by the answer's `known_at` (record time only
grows within a city), checks the checkpoint covers that moment, folds them with
the domain's own rules and compares the fold with the answer. Last, the
receipt's own signature. Each failure names what fails.

A checkpoint covers `known_at` when a later event of the city is in it, when
it was signed at or after `known_at`, or when the log had not moved since it
at the receipt's signing (the receipt's log size and head are the
checkpoint's). `issue` signs a fresh checkpoint when the latest does not.
Format 1 receipts (no proof: the signature vouched for completeness) still check.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)
from psycopg.rows import tuple_row

from dateline.domain.city import City, city_id
from dateline.infrastructure.application import DateAsISO, Dateline
from dateline.infrastructure.audit import checkpoints, merkle
from dateline.infrastructure.audit.chain import GENESIS, event_hash
from dateline.infrastructure.audit.checkpoints import (
    CheckpointError,
    instant,
    load_private_key,
    public_hex,
)
from dateline.infrastructure.audit.service import from_row, take_checkpoint
from dateline.infrastructure.audit.store import AuditDatabase, LogBroken, StoredCheckpoint

FORMAT_1 = "dateline-receipt/1"
FORMAT = "dateline-receipt/2"
ANSWER_FIELDS = ("status", "controller", "contested_by", "since", "event_id", "version")


class ReceiptError(ValueError):
    """A receipt does not check; the message says exactly what fails."""


class ReceiptsUnavailable(Exception):
    """The server cannot sign a receipt: no key, or no checkpoint can cover the answer."""


@functools.lru_cache(maxsize=1)
def _mapper() -> Mapper[UUID]:
    """The application's event decoding, without an application or a database
    (built once: it holds no state)."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def issue(app: Dateline, answer: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """A signed receipt for `answer` (a status answer: city, as_of, known_at, version, ...)."""
    key_file = app.settings.audit_key_file
    if key_file is None:
        raise ReceiptsUnavailable(
            "receipts are signed with the operator's key, and this server has none: "
            "set DATELINE_AUDIT_KEY_FILE (see `dateline audit keygen`)"
        )
    key = _key(str(key_file), key_file.stat().st_mtime_ns)
    cid = city_id(str(answer["city"]))
    known_at = _instant(answer["known_at"])
    db = AuditDatabase(app.store)
    for attempt in range(3):
        found = _covered(app, db, cid, known_at)
        if found is not None:
            return make(answer, cid, *found, key, moment)
        if attempt < 2:  # the latest checkpoint does not cover the answer: sign one that does
            try:
                take_checkpoint(app.store, key_file, moment)
            except LogBroken as error:
                raise ReceiptsUnavailable(f"no checkpoint can be signed: {error}") from None
    raise ReceiptsUnavailable(
        f"no checkpoint covers {answer['city']} even after signing one: the log or the city "
        "heads are damaged; run `dateline audit verify`"
    )


Proven = tuple[
    list[tuple[int, str, bytes]], int, bytes, int, list[bytes], StoredCheckpoint,
    tuple[int, bytes],
]  # fmt: skip


def _covered(app: Dateline, db: AuditDatabase, cid: UUID, known_at: datetime) -> Proven | None:
    """The city's events at the latest checkpoint and the proof, if it covers `known_at`."""
    if app.store.kind == "sqlite":
        with db.connect() as conn:
            size, head, latest, rows = db.receipt_snapshot(conn, cid)
            tree = _tree(db, conn, latest) if latest is not None else None
    else:
        datastore: Any = getattr(app.recorder, "datastore")  # noqa: B009 - not on the protocol
        with datastore.get_connection() as conn:
            size, head, latest, rows = db.receipt_snapshot(conn, cid)
            tree = None
            if latest is not None:
                with conn.cursor(row_factory=tuple_row) as cur:
                    tree = _tree(db, cur, latest)
    if latest is None or tree is None or cid.bytes not in tree[0]:
        return None
    index, events, city_head = tree[0][cid.bytes]
    if len(rows) != events:  # a checkpoint came between the two reads: read again
        return None
    covered = latest.size == size or known_at <= _instant(latest.created_at)
    # Covered all the same if the city has an event recorded after known_at in it.
    if not covered and (not rows or _recorded_at(cid, rows[-1]) <= known_at):
        return None
    return rows, events, city_head, index, tree[1].path(index), latest, (size, head)


_trees: dict[tuple[str, int, str], tuple[dict[bytes, tuple[int, int, bytes]], merkle.Tree]] = {}


def _tree(
    db: AuditDatabase, conn: Any, checkpoint: StoredCheckpoint
) -> tuple[dict[bytes, tuple[int, int, bytes]], merkle.Tree] | None:
    """The checkpoint's tree, kept per process (built once per checkpoint); None if the
    city heads have moved on to a later checkpoint since it was read."""
    if checkpoint.cities_root is None:  # format 1: no tree
        return None
    # The root too: a store restored from a backup may reuse a checkpoint's id.
    cache_key = (db.store.describe(), checkpoint.id, checkpoint.cities_root)
    cached = _trees.get(cache_key)
    if cached is None:
        leaves = db.city_leaves(conn)
        tree = merkle.Tree([merkle.leaf_hash(merkle.leaf(*c)) for c in leaves])
        if tree.root.hex() != checkpoint.cities_root:
            return None
        cached = ({c: (i, n, h) for i, (c, n, h) in enumerate(leaves)}, tree)
        if len(_trees) >= 4:
            _trees.pop(next(iter(_trees)))
        _trees[cache_key] = cached
    return cached


def _recorded_at(cid: UUID, row: tuple[int, str, bytes]) -> datetime:
    event = _mapper().to_domain_event(StoredEvent(cid, row[0], row[1], row[2]))
    return cast(datetime, getattr(event, "timestamp"))  # noqa: B009 - not on the protocol


def _instant(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=4)
def _key(path: str, mtime_ns: int) -> Ed25519PrivateKey:
    """The signing key, read again only when its file changes."""
    return load_private_key(Path(path))


def make(
    answer: dict[str, Any],
    city: UUID,
    rows: Sequence[tuple[int, str, bytes]],
    count: int,
    city_head: bytes,
    index: int,
    path: Sequence[bytes],
    checkpoint: StoredCheckpoint,
    log: tuple[int, bytes],
    key: Ed25519PrivateKey,
    moment: datetime,
) -> dict[str, Any]:
    """`rows`: (version, topic, state) in version order, every event of the city in the
    checkpoint."""
    events = [
        {
            "version": version,
            "topic": topic,
            "state": base64.b64encode(state).decode("ascii"),
            "event_hash": event_hash(city, version, topic, state).hex(),
        }
        for version, topic, state in rows
    ]
    body: dict[str, Any] = {
        "format": FORMAT,
        "answer": answer,
        "city_id": str(city),
        "events": events,
        "city": {"events": count, "head": city_head.hex(), "leaf_index": index},
        "proof": [p.hex() for p in path],
        "checkpoint": from_row(checkpoint).as_dict(),
        "log": {"size": log[0], "head": log[1].hex()},
        "signed_at": instant(moment),
        "public_key": public_hex(key),
    }
    body["signature"] = key.sign(rfc8785.dumps(body)).hex()
    return body


def _field(data: dict[str, Any], name: str, kind: type, where: str = "receipt") -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ReceiptError(f"{where}: field {name!r} is missing or not a {kind.__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Checked:
    """What a receipt proved: the answer, how many events were re-hashed, and (format 2)
    the checkpoint that proves the city's events complete."""

    answer: dict[str, Any]
    events: int
    public_key: str
    checkpoint: checkpoints.Checkpoint | None = None


def check(data: Any, public_key: str | None = None) -> dict[str, Any]:
    """The answer, re-derived from the receipt alone; ReceiptError naming what fails."""
    return verify_receipt(data, public_key).answer


def verify_receipt(data: Any, public_key: str | None = None) -> Checked:
    """Check a receipt offline (see the module's docstring); ReceiptError naming what fails."""
    if not isinstance(data, dict):
        raise ReceiptError("not a receipt (expected a JSON object)")
    if data.get("format") == FORMAT_1:
        answer = _check_v1(data, public_key)
        return Checked(answer, len(data["events"]), data["public_key"])
    if data.get("format") != FORMAT:
        raise ReceiptError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
    answer = _field(data, "answer", dict)
    try:
        city = UUID(_field(data, "city_id", str))
    except ValueError:
        raise ReceiptError("field 'city_id' is not a UUID") from None
    slug = answer.get("city", "?")
    # 1. Every event re-hashed, versions 1..N, chained into the city head.
    stored: list[StoredEvent] = []
    head = GENESIS
    for k, item in enumerate(_field(data, "events", list), start=1):
        stored.append(_event(item, k, city, slug))
        head = merkle.city_head([bytes.fromhex(item["event_hash"])], head)
    count = len(stored)
    # 2. The leaf those events make, up the proof, to the root the checkpoint signed.
    leaf = _field(data, "city", dict)
    claimed = _field(leaf, "events", int, "city")
    if claimed != count:
        if claimed == count + 1:
            missing = f"{slug}-{claimed} is missing"
        elif claimed > count:
            missing = f"{slug}-{count + 1} to {slug}-{claimed} are missing"
        else:
            missing = f"{count - claimed} too many"
        raise ReceiptError(
            f"the receipt holds {count} events of {slug} but its leaf under the checkpoint "
            f"counts {claimed}: {missing}"
        )
    if _field(leaf, "head", str, "city") != head.hex():
        raise ReceiptError(
            f"{slug}'s {count} events chain to city head {head.hex()[:16]}..., not to the "
            f"leaf's {str(leaf['head'])[:16]}...: an event was changed, left out or reordered"
        )
    try:
        checkpoint = checkpoints.parse(_field(data, "checkpoint", dict), "checkpoint")
    except CheckpointError as error:
        raise ReceiptError(str(error)) from None
    if checkpoint.cities_root is None or checkpoint.cities is None:
        raise ReceiptError("checkpoint: it has no cities root (format 1) and proves nothing")
    try:
        checkpoints.check(checkpoint, public_key)
    except CheckpointError as error:
        raise ReceiptError(f"checkpoint: {error}") from None
    index = _field(leaf, "leaf_index", int, "city")
    try:
        path = [bytes.fromhex(p) for p in _field(data, "proof", list)]
        reached = merkle.root_from_proof(
            merkle.leaf_hash(merkle.leaf(city, count, head)), index, checkpoint.cities, path
        )
    except (TypeError, ValueError) as error:
        raise ReceiptError(f"proof: not an inclusion proof of leaf {index}: {error}") from None
    if reached.hex() != checkpoint.cities_root:
        raise ReceiptError(
            f"proof: {slug}'s leaf ({count} events, head {head.hex()[:16]}...) does not lead "
            f"to the checkpoint's cities root {checkpoint.cities_root[:16]}... "
            f"(it leads to {reached.hex()[:16]}...): the proof or the leaf index was changed"
        )
    # 3. The events recorded by known_at, folded to the answer.
    mapper = _mapper()
    decoded: list[Any] = []
    for event in stored:
        try:
            decoded.append(mapper.to_domain_event(event))
        except Exception as error:
            raise ReceiptError(
                f"{slug}-{event.originator_version}: cannot be decoded ({error})"
            ) from None
    try:
        known_at = _instant(answer.get("known_at"))
    except ValueError:
        raise ReceiptError("answer: known_at is not an instant") from None
    known = [e for e in decoded if e.timestamp <= known_at]
    if decoded[: len(known)] != known:
        raise ReceiptError(f"{slug}: record times do not grow with the versions")
    if answer.get("version") != len(known):
        raise ReceiptError(
            f"answer: version is {answer.get('version')!r} but {len(known)} of {slug}'s events "
            f"were recorded by known_at {answer.get('known_at')}"
        )
    _refold(answer, known)
    _check_signature(data, public_key)
    log = _field(data, "log", dict)
    signed_at = _field(data, "signed_at", str)
    unchanged = (log.get("size"), log.get("head")) == (checkpoint.size, checkpoint.head)
    if len(known) == count and not (
        known_at <= _instant(checkpoint.created_at)
        or (unchanged and known_at <= _instant(signed_at))
    ):
        raise ReceiptError(
            f"the checkpoint of {checkpoint.created_at} does not cover known_at "
            f"{answer.get('known_at')}: an event of {slug} recorded between them could be missing"
        )
    return Checked(dict(answer), count, data["public_key"], checkpoint)


def _event(item: Any, k: int, city: UUID, slug: str) -> StoredEvent:
    """Event k of the receipt, its hash recomputed from its bytes."""
    if not isinstance(item, dict):
        raise ReceiptError(f"event {k}: not an object")
    version = _field(item, "version", int, f"event {k}")
    name = f"{slug}-{version}"
    if version != k:
        raise ReceiptError(f"{name}: expected version {k} here (a missing or extra event)")
    topic = _field(item, "topic", str, name)
    try:
        state = base64.b64decode(_field(item, "state", str, name), validate=True)
    except ValueError:
        raise ReceiptError(f"{name}: its state is not base64") from None
    recomputed = event_hash(city, version, topic, state).hex()
    if recomputed != item.get("event_hash"):
        raise ReceiptError(
            f"{name}: its stored bytes hash to {recomputed[:16]}..., "
            f"not to the receipt's {str(item.get('event_hash'))[:16]}..."
        )
    return StoredEvent(city, version, topic, state)


SIGNED_AFTER = (
    "the answer, its events and their proof check, so what changed after signing is "
    "the log's size or head, the signing time, the public key or the signature itself"
)
SIGNED_AFTER_V1 = (
    "the answer and its events check, so what changed after signing is a log entry "
    "(position or entry hash), the log's size or head, the checkpoint, the signing time, "
    "the city id or the signature itself"
)


def _check_signature(
    data: dict[str, Any], public_key: str | None, changed: str = SIGNED_AFTER
) -> None:
    signer = _field(data, "public_key", str)
    if public_key is not None and public_key.lower() != signer.lower():
        raise ReceiptError(
            f"signed by key {signer[:16]}..., not by the expected {public_key[:16]}..."
        )
    signature = _field(data, "signature", str)
    body = {k: v for k, v in data.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(signer)).verify(
            bytes.fromhex(signature), rfc8785.dumps(body)
        )
    except (ValueError, InvalidSignature):
        raise ReceiptError(f"the signature does not match: {changed}") from None


def _check_v1(data: dict[str, Any], public_key: str | None) -> dict[str, Any]:
    """A format-1 receipt (before checkpoints had a cities root)."""
    answer = _field(data, "answer", dict)
    try:
        city = UUID(_field(data, "city_id", str))
    except ValueError:
        raise ReceiptError("field 'city_id' is not a UUID") from None
    slug = answer.get("city", "?")
    mapper = _mapper()
    decoded = []
    for k, item in enumerate(_field(data, "events", list), start=1):
        where = f"event {k}"
        if not isinstance(item, dict):
            raise ReceiptError(f"{where}: not an object")
        version = _field(item, "version", int, where)
        name = f"{slug}-{version}"
        if version != k:
            raise ReceiptError(f"{name}: expected version {k} here (a missing or extra event)")
        topic = _field(item, "topic", str, name)
        try:
            state = base64.b64decode(_field(item, "state", str, name), validate=True)
        except ValueError:
            raise ReceiptError(f"{name}: its state is not base64") from None
        recomputed = event_hash(city, version, topic, state).hex()
        if recomputed != item.get("event_hash"):
            raise ReceiptError(
                f"{name}: its stored bytes hash to {recomputed[:16]}..., "
                f"not to the receipt's {str(item.get('event_hash'))[:16]}..."
            )
        try:
            decoded.append(mapper.to_domain_event(StoredEvent(city, version, topic, state)))
        except Exception as error:
            raise ReceiptError(f"{name}: cannot be decoded ({error})") from None
    expected_version = answer.get("version")
    if len(decoded) != expected_version:
        raise ReceiptError(
            f"the answer is about version {expected_version} but the receipt holds "
            f"{len(decoded)} events"
        )
    _refold(answer, decoded)
    # Last, so that a change the checks above can place is named precisely.
    _check_signature(data, public_key, SIGNED_AFTER_V1)
    return dict(answer)


def _refold(answer: dict[str, Any], events: list[Any]) -> dict[str, Any]:
    if not events:
        refolded = {"status": "unknown", "controller": None, "contested_by": None,
                    "since": None, "event_id": None, "version": 0}  # fmt: skip
    else:
        city: Any = None
        for event in events:
            city = event.mutate(city)
        if not isinstance(city, City):
            raise ReceiptError("the events do not fold into a city")
        try:
            as_of = date.fromisoformat(str(answer.get("as_of")))
        except ValueError:
            raise ReceiptError("answer: as_of is not a date") from None
        state = city.status_on(as_of)
        refolded = {
            "status": state.status.value,
            "controller": state.controller,
            "contested_by": state.contested_by,
            "since": state.since.isoformat() if state.since else None,
            "event_id": state.event_id,
            "version": city.version,
        }
    for name in ANSWER_FIELDS:
        if refolded[name] != answer.get(name):
            raise ReceiptError(
                f"answer: {name} is {answer.get(name)!r} but the events fold to {refolded[name]!r}"
            )
    return answer
