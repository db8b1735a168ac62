"""The hash-linked log's entries for a bulk write (`dateline import`), by COPY.

The append path extends the chain in SQL (`dateline_audit_append`, one INSERT
per event in a plpgsql loop). A bulk write already knows its events' notification
ids (taken from the events table's sequence under the library's table lock), so
it computes the chain here with `chain.py` - the same functions `verify` uses -
and sends the entries with one binary COPY. Entries are unchanged: position,
notification id, city id, version, event hash, entry hash, in notification
order, each entry_hash = sha256(previous entry_hash || event_hash).

Call inside the transaction that inserted the events, after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from psycopg import Cursor
from psycopg.sql import SQL, Identifier

from dateline.infrastructure.audit.chain import GENESIS, chain
from dateline.infrastructure.audit.store import LOG_TABLE, _uuid, event_hashes

COLUMNS = "position, notification_id, city_id, version, event_hash, entry_hash"
TYPES = ["int8", "int8", "uuid", "int8", "bytea", "bytea"]


def postgres_copy_entries(
    cursor: Cursor[Any],
    schema: str,
    stored_events: Sequence[Any],
    notification_ids: Sequence[int],
) -> int:
    """Append one entry per event (given in notification order, with their ids);
    returns the log's size afterwards. Takes the log's lock as the append
    function does, so entries go in one transaction at a time."""
    if len(stored_events) != len(notification_ids):
        raise ValueError(f"{len(stored_events)} events but {len(notification_ids)} ids")
    if any(b <= a for a, b in pairwise(notification_ids)):
        raise ValueError("notification ids must increase")
    table = SQL("{}.{}").format(Identifier(schema), Identifier(LOG_TABLE))
    cursor.execute(SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
    cursor.execute(
        SQL("SELECT position, entry_hash FROM {} ORDER BY position DESC LIMIT 1").format(table)
    )
    head = cursor.fetchone()
    position, previous = _head(head)
    if not stored_events:
        return position
    hashes = event_hashes(stored_events)
    with cursor.copy(
        SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(table, SQL(COLUMNS))
    ) as copy:
        copy.set_types(TYPES)
        for i, (s, nid, h, link) in enumerate(
            zip(stored_events, notification_ids, hashes, chain(previous, hashes), strict=True),
            start=position + 1,
        ):
            copy.write_row((i, nid, _uuid(s.originator_id), s.originator_version, h, link))
    return position + len(stored_events)


def _head(row: Any) -> tuple[int, bytes]:
    if row is None:
        return 0, GENESIS
    if isinstance(row, dict):
        return int(row["position"]), bytes(row["entry_hash"])
    return int(row[0]), bytes(row[1])
