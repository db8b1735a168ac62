"""The hash-linked log in SQL, for both stores: write entries, stream them back.

The recorders call `sqlite_append` / `postgres_append` inside the append's own
transaction, after the events are inserted, so no event exists without its
entry. On PostgreSQL the chain is extended by migration 0006's function
`dateline_audit_append_recent`, which runs in the library's pipeline (no round
trip and no fetch before the library's sync), hashes the events just inserted
next to the data, and takes a lock on the log so that entries are added one
transaction at a time.

Reads (`AuditDatabase`) use a plain connection of their own, so `audit verify`
works on a store too damaged for the application to open.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from dateline.infrastructure.audit.chain import GENESIS, EntryRow, EventRow, chain, event_hash
from dateline.infrastructure.settings import StoreConfig

LOG_TABLE = "dateline_audit_log"
CHECKPOINT_TABLE = "dateline_audit_checkpoints"
CITIES_TABLE = "dateline_audit_cities"
APPEND_RECENT_FUNCTION = "dateline_audit_append_recent"  # (n): the recorders (0006)
FETCH_ROWS = 20_000
# chain.event_hash's input, in PostgreSQL (sha256() of it is the event hash).
SQL_EVENT_HASH_INPUT = (
    "'\\x646174656c696e652d6576656e742d763100'::bytea || uuid_send(originator_id) "
    "|| int8send(originator_version) || int2send(octet_length(topic)::int2) "
    "|| convert_to(topic, 'UTF8') || state"
)


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def event_hashes(stored_events: Sequence[Any]) -> list[bytes]:
    return [
        event_hash(_uuid(s.originator_id), s.originator_version, s.topic, s.state)
        for s in stored_events
    ]


# ---------------------------------------------------------------- the write hooks
def sqlite_append(
    cursor: Any, stored_events: Sequence[Any], notification_ids: Sequence[int]
) -> None:
    """Add one entry per event (given in notification order) to the SQLite log.

    Call after the events are inserted, in the same transaction: SQLite's write
    lock is held from the insert on, so the head read here stays the head."""
    if not stored_events:
        return
    cursor.execute(f"SELECT position, entry_hash FROM {LOG_TABLE} ORDER BY position DESC LIMIT 1")
    head = cursor.fetchone()
    position, previous = (int(head[0]), bytes(head[1])) if head else (0, GENESIS)
    hashes = event_hashes(stored_events)
    links = chain(previous, hashes)
    cursor.executemany(
        f"INSERT INTO {LOG_TABLE} (position, notification_id, city_id, version, event_hash, "
        "entry_hash) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (position + i, nid, _uuid(s.originator_id).hex, s.originator_version, h, link)
            for i, (s, nid, h, link) in enumerate(
                zip(stored_events, notification_ids, hashes, links, strict=True), start=1
            )
        ],
    )


def postgres_append_statement(schema: str) -> Composed:
    return SQL("SELECT {schema}.{function}(%b::integer)").format(
        schema=Identifier(schema), function=Identifier(APPEND_RECENT_FUNCTION)
    )


def postgres_append(
    connection: psycopg.Connection[Any], statement: Composed, stored_events: Sequence[Any]
) -> None:
    """Add one entry per event to the PostgreSQL log, in the library's pipeline.

    Call after the library's `_insert_stored_events`, with the statement from
    `postgres_append_statement` (build it once): under the library's table lock
    the events just inserted are the newest, and the server hashes them from
    the stored rows. A second cursor, no prepare: nothing is fetched, so a
    conflict still surfaces at the library's sync."""
    if not stored_events:
        return
    with connection.cursor() as audit_cursor:
        audit_cursor.execute(statement, (len(stored_events),), prepare=False)


# ---------------------------------------------------------------- reading
@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    id: int
    size: int
    head: str  # hex
    created_at: str
    public_key: str  # hex, raw Ed25519
    signature: str  # hex
    cities: int | None = None  # None: signed before the cities root existed (format 1)
    cities_root: str | None = None


# A city as a checkpoint commits to it: (city id (16 bytes), events, city head).
CityLeaf = tuple[bytes, int, bytes]


class LogBroken(Exception):
    """The log does not fold into city heads; `dateline audit verify` says where."""


def _city_bytes(value: Any) -> bytes:
    if isinstance(value, UUID):
        return value.bytes
    return bytes.fromhex(value) if isinstance(value, str) else bytes(value)


class AuditDatabase:
    """A plain connection to the store, for the audit tools."""

    def __init__(self, store: StoreConfig) -> None:
        self.store = store
        self.kind = store.kind
        if store.kind == "sqlite":
            self.prefix = ""
            self.events_table = "stored_events"
        else:
            self.prefix = f'"{store.schema}".'
            self.events_table = f"{self.prefix}dateline_events"

    def t(self, table: str) -> str:
        return self.prefix + table

    @property
    def mark(self) -> str:
        return "?" if self.kind == "sqlite" else "%s"

    def connect(self) -> AbstractContextManager[Any]:
        s = self.store
        if s.kind == "sqlite":
            assert s.sqlite_path is not None
            if not s.sqlite_path.exists():
                raise FileNotFoundError(f"no store at {s.sqlite_path}")
            return closing(sqlite3.connect(s.sqlite_path))
        return psycopg.connect(
            host=s.host, port=s.port, user=s.user, password=s.password, dbname=s.dbname
        )

    # The rows, in order, as the chain check reads them.
    def events(self, conn: Any) -> Iterator[EventRow]:
        """Every event in notification order with its hash recomputed from the stored row.

        PostgreSQL computes the hash next to the data (the same formula as
        `chain.event_hash`, in SQL), so only 60 bytes a row cross the wire."""
        if self.kind == "sqlite":
            cur = conn.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                "FROM stored_events ORDER BY rowid"
            )
            for nid, cid, v, topic, state in cur:
                city = UUID(cid)
                yield nid, city.bytes, v, event_hash(city, v, topic, bytes(state))
            return
        with conn.cursor(name="dateline_audit_events", binary=True) as cur:
            cur.itersize = FETCH_ROWS
            cur.execute(
                "SELECT notification_id, uuid_send(originator_id), originator_version, "
                f"sha256({SQL_EVENT_HASH_INPUT}) FROM {self.events_table} ORDER BY notification_id"
            )
            yield from cur

    def entries(self, conn: Any) -> Iterator[EntryRow]:
        if self.kind == "sqlite":
            query = (
                f"SELECT position, notification_id, city_id, version, event_hash, entry_hash "
                f"FROM {self.t(LOG_TABLE)} ORDER BY position"
            )
            for p, nid, cid, v, eh, h in conn.execute(query):
                yield p, nid, bytes.fromhex(cid), v, bytes(eh), bytes(h)
            return
        with conn.cursor(name="dateline_audit_entries", binary=True) as cur:
            cur.itersize = FETCH_ROWS
            cur.execute(
                "SELECT position, notification_id, uuid_send(city_id), version, event_hash, "
                f"entry_hash FROM {self.t(LOG_TABLE)} ORDER BY position"
            )
            yield from cur

    def slugs(self, conn: Any) -> dict[bytes, str]:
        """City id (16 bytes) -> slug, from the event index."""
        rows = conn.execute(
            f"SELECT city_id, slug FROM {self.t('dateline_event_index')} WHERE version = 1"
        ).fetchall()
        return {(UUID(c) if isinstance(c, str) else c).bytes: s for c, s in rows}

    def indexed_versions(self, conn: Any) -> dict[bytes, int]:
        """City id (16 bytes) -> its last version according to the event index."""
        rows = conn.execute(
            f"SELECT city_id, max(version) FROM {self.t('dateline_event_index')} GROUP BY city_id"
        ).fetchall()
        return {(UUID(c) if isinstance(c, str) else c).bytes: int(v) for c, v in rows}

    def head(self, conn: Any) -> tuple[int, bytes]:
        row = conn.execute(
            f"SELECT position, entry_hash FROM {self.t(LOG_TABLE)} ORDER BY position DESC LIMIT 1"
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else (0, GENESIS)

    def city_entries(self, conn: Any, city_id: UUID) -> list[tuple[int, int, bytes, bytes]]:
        """(position, version, event hash, entry hash) of one city's entries."""
        key: Any = city_id.hex if self.kind == "sqlite" else city_id
        rows = conn.execute(
            f"SELECT position, version, event_hash, entry_hash FROM {self.t(LOG_TABLE)} "
            f"WHERE city_id = {self.mark} ORDER BY position",
            (key,),
        ).fetchall()
        return [(int(p), int(v), bytes(eh), bytes(h)) for p, v, eh, h in rows]

    def _head_and_latest_sql(self) -> str:
        log, cps = self.t(LOG_TABLE), self.t(CHECKPOINT_TABLE)
        return (
            f"SELECT h.position, h.entry_hash, c.id, c.size, c.head, c.created_at, "
            f"c.public_key, c.signature, c.cities, c.cities_root FROM (SELECT 1 AS one) AS o "
            f"LEFT JOIN (SELECT position, entry_hash FROM {log} ORDER BY position DESC LIMIT 1) "
            f"AS h ON true LEFT JOIN (SELECT * FROM {cps} ORDER BY id DESC LIMIT 1) AS c ON true"
        )

    @staticmethod
    def _head_and_latest(row: Sequence[Any]) -> tuple[int, bytes, StoredCheckpoint | None]:
        size, head = (int(row[0]), bytes(row[1])) if row[0] is not None else (0, GENESIS)
        return size, head, None if row[2] is None else _checkpoint(row[2:])

    def head_and_latest(self, conn: Any) -> tuple[int, bytes, StoredCheckpoint | None]:
        """The log's size and head, and the latest checkpoint, in one round trip."""
        return self._head_and_latest(conn.execute(self._head_and_latest_sql()).fetchone())

    def receipt_snapshot(
        self, conn: Any, city_id: UUID
    ) -> tuple[int, bytes, StoredCheckpoint | None, list[tuple[int, str, bytes]]]:
        """The log's size and head, the latest checkpoint, and the city's events up to
        its count in the city heads (as of the latest fold): (version, topic, state).
        On PostgreSQL (`conn` a connection) both queries go in one round trip; they
        may straddle a checkpoint, which the caller sees as counts that differ."""
        m = self.mark
        key: Any = city_id.hex if self.kind == "sqlite" else city_id
        events = (
            f"SELECT originator_version, topic, state FROM {self.events_table} "
            f"WHERE originator_id = {m} AND originator_version <= "
            f"(SELECT events FROM {self.t(CITIES_TABLE)} WHERE city_id = {m}) "
            "ORDER BY originator_version"
        )
        if self.kind == "sqlite":
            row = conn.execute(self._head_and_latest_sql()).fetchone()
            rows = conn.execute(events, (key, key)).fetchall()
        else:
            with (
                conn.pipeline(),
                conn.cursor(row_factory=tuple_row) as first,
                conn.cursor(row_factory=tuple_row) as second,
            ):
                first.execute(self._head_and_latest_sql())
                second.execute(events, (key, key))
                row = first.fetchone()
                rows = second.fetchall()
        return (
            *self._head_and_latest(row),
            [(int(v), t, bytes(st)) for v, t, st in rows],
        )

    def entry_at(self, conn: Any, position: int) -> bytes | None:
        row = conn.execute(
            f"SELECT entry_hash FROM {self.t(LOG_TABLE)} WHERE position = {self.mark}",
            (position,),
        ).fetchone()
        return None if row is None else bytes(row[0])

    # Checkpoints.
    def save_checkpoint(self, conn: Any, checkpoint: Any) -> int:
        """Keep a signed checkpoint (checkpoints.Checkpoint) and commit."""
        m = self.mark
        c = checkpoint
        row = conn.execute(
            f"INSERT INTO {self.t(CHECKPOINT_TABLE)} (size, head, created_at, public_key, "
            f"signature, cities, cities_root) VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}) "
            "RETURNING id",
            (c.size, c.head, c.created_at, c.public_key, c.signature, c.cities, c.cities_root),
        ).fetchone()
        conn.commit()
        return int(row[0])

    def checkpoints(self, conn: Any, latest_only: bool = False) -> list[StoredCheckpoint]:
        order = "DESC LIMIT 1" if latest_only else "ASC"
        rows = conn.execute(
            f"SELECT id, size, head, created_at, public_key, signature, cities, cities_root "
            f"FROM {self.t(CHECKPOINT_TABLE)} ORDER BY id {order}"
        ).fetchall()
        return [_checkpoint(r) for r in rows]

    # City heads (migration 0006): derived from the log, folded forward by checkpoints.
    def fold_cities(self, conn: Any) -> tuple[int, bytes, list[CityLeaf]]:
        """Bring every city's (events, head) up to the log's head; return the log's
        size and head and every city's leaf, sorted by city id.

        Takes the cities table's write lock (held until the caller commits), reads
        only the entries after the last fold, and writes the cities they touched."""
        cities = self.t(CITIES_TABLE)
        if self.kind == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
        else:
            conn.execute(f"LOCK TABLE {cities} IN EXCLUSIVE MODE")
        state: dict[bytes, list[Any]] = {}
        folded = 0
        for cid, events, head, position in conn.execute(
            f"SELECT city_id, events, head, position FROM {cities}"
        ).fetchall():
            state[_city_bytes(cid)] = [int(events), bytes(head), int(position)]
            folded = max(folded, int(position))
        size, last = folded, self.entry_at(conn, folded) if folded else GENESIS
        if last is None:
            raise LogBroken(f"the log has no entry {folded}, which its city heads were folded to")
        touched: set[bytes] = set()
        sha256 = hashlib.sha256
        for position, cid, version, h, link in self._entries_after(conn, folded):
            key = _city_bytes(cid)
            city = state.get(key)
            if city is None:
                city = state[key] = [0, GENESIS, 0]
            if version != city[0] + 1:
                raise LogBroken(
                    f"the log's entry {position} records version {version} of city "
                    f"{UUID(bytes=key)} after version {city[0]}: run `dateline audit verify`"
                )
            city[0], city[1], city[2] = version, sha256(city[1] + bytes(h)).digest(), position
            touched.add(key)
            size, last = position, bytes(link)
        if touched:
            m = self.mark
            rows = [
                (UUID(bytes=k).hex if self.kind == "sqlite" else UUID(bytes=k), *state[k])
                for k in sorted(touched)
            ]
            statement = (
                f"INSERT INTO {cities} (city_id, events, head, position) "
                f"VALUES ({m}, {m}, {m}, {m}) ON CONFLICT (city_id) DO UPDATE SET "
                "events = excluded.events, head = excluded.head, position = excluded.position"
            )
            if self.kind == "sqlite":
                conn.executemany(statement, rows)
            else:
                with conn.cursor() as cur:
                    cur.executemany(statement, rows)
        return size, last, [(k, v[0], v[1]) for k, v in sorted(state.items())]

    def _entries_after(self, conn: Any, position: int) -> Iterator[tuple[Any, ...]]:
        query = (
            f"SELECT position, city_id, version, event_hash, entry_hash FROM {self.t(LOG_TABLE)} "
            f"WHERE position > {self.mark} ORDER BY position"
        )
        if self.kind == "sqlite":
            yield from conn.execute(query, (position,))
            return
        with conn.cursor(name="dateline_audit_fold", binary=True) as cur:
            cur.itersize = FETCH_ROWS
            cur.execute(query, (position,))
            yield from cur

    def city_leaves(self, conn: Any) -> list[CityLeaf]:
        """Every city's (id, events, head) as last folded, sorted by city id."""
        rows = conn.execute(f"SELECT city_id, events, head FROM {self.t(CITIES_TABLE)}").fetchall()
        return sorted((_city_bytes(c), int(n), bytes(h)) for c, n, h in rows)


def _checkpoint(r: Sequence[Any]) -> StoredCheckpoint:
    """(id, size, head, created_at, public_key, signature, cities, cities_root)."""
    return StoredCheckpoint(
        int(r[0]), int(r[1]), r[2], r[3], r[4], r[5],
        None if r[6] is None else int(r[6]), r[7],
    )  # fmt: skip
