"""Receipts: a status answer that can be checked later, offline, by anyone.

A receipt carries the answer, every event of the city up to the answer's
version exactly as stored (type and bytes) with its hash and its entry in the
hash-linked log, the log's size and head at that moment, the latest signed
checkpoint, and the operator's Ed25519 signature over all of it (RFC 8785).
`check` needs no database: it checks the signature, recomputes every event
hash, checks the versions run 1..N, decodes the events and folds the city with
the domain's own rules, and compares the fold's answer with the receipt's.

What it proves: the operator's key vouched for this answer and these events,
and the answer follows from them. `dateline audit verify` against the
database (or a later checkpoint) shows that those entries are still in the log.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
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
from dateline.infrastructure.audit.chain import event_hash
from dateline.infrastructure.audit.checkpoints import instant, load_private_key, public_hex
from dateline.infrastructure.audit.store import AuditDatabase

FORMAT = "dateline-receipt/1"
ANSWER_FIELDS = ("status", "controller", "contested_by", "since", "event_id", "version")


class ReceiptError(ValueError):
    """A receipt does not check; the message says exactly what fails."""


class ReceiptsUnavailable(Exception):
    """The server has no key to sign receipts with."""


def _mapper() -> Mapper[UUID]:
    """The application's event decoding, without an application or a database."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def issue(app: Dateline, answer: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """A signed receipt for `answer` (a status answer: city, as_of, version, ...)."""
    key_file = app.settings.audit_key_file
    if key_file is None:
        raise ReceiptsUnavailable(
            "receipts are signed with the operator's key, and this server has none: "
            "set DATELINE_AUDIT_KEY_FILE (see `dateline audit keygen`)"
        )
    key = _key(str(key_file), key_file.stat().st_mtime_ns)
    cid = city_id(str(answer["city"]))
    version = int(answer["version"])
    db = AuditDatabase(app.store)
    if app.store.kind == "sqlite":
        with db.connect() as conn:
            rows = db.receipt_rows(conn, cid, version)
            size, head, latest = db.head_and_latest(conn)
    else:
        datastore: Any = getattr(app.recorder, "datastore")  # noqa: B009 - not on the protocol
        with datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            rows = db.receipt_rows(cur, cid, version)
            size, head, latest = db.head_and_latest(cur)
    checkpoint = None
    if latest is not None:
        checkpoint = {
            "size": latest.size, "head": latest.head, "created_at": latest.created_at,
            "public_key": latest.public_key, "signature": latest.signature,
            "format": "dateline-checkpoint/1",
        }  # fmt: skip
    return make(answer, cid, rows, (size, head), checkpoint, key, moment)


@functools.lru_cache(maxsize=4)
def _key(path: str, mtime_ns: int) -> Ed25519PrivateKey:
    """The signing key, read again only when its file changes."""
    return load_private_key(Path(path))


def make(
    answer: dict[str, Any],
    city: UUID,
    rows: Sequence[tuple[int, str, bytes, int, bytes, bytes]],
    log: tuple[int, bytes],
    checkpoint: dict[str, Any] | None,
    key: Ed25519PrivateKey,
    moment: datetime,
) -> dict[str, Any]:
    """`rows`: (version, topic, state, position, event hash, entry hash), version order."""
    events = [
        {
            "version": version,
            "topic": topic,
            "state": base64.b64encode(state).decode("ascii"),
            "event_hash": h.hex(),
            "position": position,
            "entry_hash": link.hex(),
        }
        for version, topic, state, position, h, link in rows
    ]
    body: dict[str, Any] = {
        "format": FORMAT,
        "answer": answer,
        "city_id": str(city),
        "events": events,
        "log": {"size": log[0], "head": log[1].hex()},
        "checkpoint": checkpoint,
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


def check(data: Any, public_key: str | None = None) -> dict[str, Any]:
    """The answer, re-derived from the receipt alone; ReceiptError naming what fails."""
    if not isinstance(data, dict):
        raise ReceiptError("not a receipt (expected a JSON object)")
    if data.get("format") != FORMAT:
        raise ReceiptError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
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
        raise ReceiptError(
            "the signature does not match: the answer and its events check, so what changed "
            "after signing is a log entry (position or entry hash), the log's size or head, "
            "the checkpoint, the signing time, the city id or the signature itself"
        ) from None
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
