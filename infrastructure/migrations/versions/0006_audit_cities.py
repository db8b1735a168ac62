"""Checkpoints that prove a city complete; a set-based append to the hash log.

`dateline_audit_cities` holds, per city, the number of its events in the log
and its city head (SHA-256 chain over its event hashes in version order,
infrastructure/audit/merkle.py), as of the log position `position` (the last
entry folded for that city). It is derived from the log and brought up to
date by whoever signs a checkpoint (incrementally: only the entries since the
last fold are read), so it costs nothing on the append path and sees entries
however they were written. Checkpoints gain `cities` and `cities_root`: the
RFC 9162 Merkle tree over every city's (id, events, head), signed with them.

On PostgreSQL the recorders call `dateline_audit_append_recent(n)`: the n
events just inserted under the library's table lock (the n highest
notification ids), their hashes computed by the server from the stored rows
(the formula `audit verify` uses), the chain in one pass, the entries in one
INSERT. The append sends one integer instead of three arrays hashed and dumped
by Python. `dateline_audit_append(cities, versions, hashes)` stays, for any
other writer, rewritten the same set-based way (0005's ran one INSERT per
event). The entry format and both hash formulas are unchanged.

Revision ID: 0006_audit_cities
Revises: 0005_audit_log
"""

from __future__ import annotations

from alembic import op

from dateline.infrastructure.audit.store import SQL_EVENT_HASH_INPUT
from dateline.infrastructure.settings import StoreConfig

revision = "0006_audit_cities"
down_revision = "0005_audit_log"
branch_labels = None
depends_on = None


def append_function(s: str) -> str:
    """The set-based `dateline_audit_append` (schema `s`, quoted)."""
    return f"""CREATE OR REPLACE FUNCTION {s}.dateline_audit_append(
            cities uuid[], versions bigint[], hashes bytea[]) RETURNS void
        LANGUAGE plpgsql AS $BODY$
        DECLARE p bigint; h bytea; nids bigint[]; cs uuid[]; vs bigint[]; ehs bytea[];
            links bytea[]; n integer; i integer;
        BEGIN
            LOCK TABLE {s}.dateline_audit_log IN SHARE ROW EXCLUSIVE MODE;
            SELECT position, entry_hash INTO p, h FROM {s}.dateline_audit_log
                ORDER BY position DESC LIMIT 1;
            IF p IS NULL THEN p := 0; h := '\\x{"00" * 32}'::bytea; END IF;
            SELECT array_agg(e.notification_id ORDER BY e.notification_id),
                   array_agg(u.city_id ORDER BY e.notification_id),
                   array_agg(u.version ORDER BY e.notification_id),
                   array_agg(u.event_hash ORDER BY e.notification_id)
              INTO nids, cs, vs, ehs
              FROM unnest(cities, versions, hashes) AS u(city_id, version, event_hash)
              JOIN {s}.dateline_events e
                ON e.originator_id = u.city_id AND e.originator_version = u.version;
            n := coalesce(cardinality(nids), 0);
            IF n <> cardinality(cities) THEN
                RAISE EXCEPTION 'dateline_audit_append: % events given, % found',
                    cardinality(cities), n;
            END IF;
            links := array_fill(NULL::bytea, ARRAY[n]);
            FOR i IN 1..n LOOP
                h := sha256(h || ehs[i]);
                links[i] := h;
            END LOOP;
            INSERT INTO {s}.dateline_audit_log
                SELECT p + u.k, u.nid, u.city_id, u.version, u.event_hash, u.entry_hash
                FROM unnest(nids, cs, vs, ehs, links)
                    WITH ORDINALITY AS u(nid, city_id, version, event_hash, entry_hash, k);
        END; $BODY$"""


def append_recent_function(s: str) -> str:
    """`dateline_audit_append_recent(n)`: entries for the n newest events."""
    return f"""CREATE OR REPLACE FUNCTION {s}.dateline_audit_append_recent(n integer)
        RETURNS void LANGUAGE plpgsql AS $BODY$
        DECLARE p bigint; h bytea; last_nid bigint; nids bigint[]; cs uuid[]; vs bigint[];
            ehs bytea[]; links bytea[]; m integer; i integer;
        BEGIN
            LOCK TABLE {s}.dateline_audit_log IN SHARE ROW EXCLUSIVE MODE;
            SELECT position, entry_hash, notification_id INTO p, h, last_nid
                FROM {s}.dateline_audit_log ORDER BY position DESC LIMIT 1;
            IF p IS NULL THEN p := 0; last_nid := 0; h := '\\x{"00" * 32}'::bytea; END IF;
            SELECT array_agg(notification_id ORDER BY notification_id),
                   array_agg(originator_id ORDER BY notification_id),
                   array_agg(originator_version ORDER BY notification_id),
                   array_agg(sha256({SQL_EVENT_HASH_INPUT}) ORDER BY notification_id)
              INTO nids, cs, vs, ehs
              FROM (SELECT * FROM {s}.dateline_events
                    ORDER BY notification_id DESC LIMIT n) AS e;
            m := coalesce(cardinality(nids), 0);
            IF m <> n OR nids[1] <= last_nid THEN
                RAISE EXCEPTION 'dateline_audit_append_recent: % new events expected after '
                    'notification %, found % from %', n, last_nid, m, nids[1];
            END IF;
            links := array_fill(NULL::bytea, ARRAY[n]);
            FOR i IN 1..n LOOP
                h := sha256(h || ehs[i]);
                links[i] := h;
            END LOOP;
            INSERT INTO {s}.dateline_audit_log
                SELECT p + u.k, u.nid, u.city_id, u.version, u.event_hash, u.entry_hash
                FROM unnest(nids, cs, vs, ehs, links)
                    WITH ORDINALITY AS u(nid, city_id, version, event_hash, entry_hash, k);
        END; $BODY$"""


# 0005's function, put back by the downgrade.
LOOP_FUNCTION = """CREATE OR REPLACE FUNCTION {s}.dateline_audit_append(
        cities uuid[], versions bigint[], hashes bytea[]) RETURNS void
    LANGUAGE plpgsql AS $BODY$
    DECLARE p bigint; h bytea; r record; n integer := 0;
    BEGIN
        LOCK TABLE {s}.dateline_audit_log IN SHARE ROW EXCLUSIVE MODE;
        SELECT position, entry_hash INTO p, h FROM {s}.dateline_audit_log
            ORDER BY position DESC LIMIT 1;
        IF p IS NULL THEN p := 0; h := decode(repeat('00', 32), 'hex'); END IF;
        FOR r IN SELECT e.notification_id, u.city_id, u.version, u.event_hash
            FROM unnest(cities, versions, hashes) AS u(city_id, version, event_hash)
            JOIN {s}.dateline_events e
              ON e.originator_id = u.city_id AND e.originator_version = u.version
            ORDER BY e.notification_id
        LOOP
            p := p + 1; n := n + 1;
            h := sha256(h || r.event_hash);
            INSERT INTO {s}.dateline_audit_log
                VALUES (p, r.notification_id, r.city_id, r.version, r.event_hash, h);
        END LOOP;
        IF n <> cardinality(cities) THEN
            RAISE EXCEPTION 'dateline_audit_append: % events given, % found',
                cardinality(cities), n;
        END IF;
    END; $BODY$"""


def upgrade(store: StoreConfig) -> None:
    if store.kind == "sqlite":
        op.execute("""CREATE TABLE dateline_audit_cities (
            city_id TEXT PRIMARY KEY, events INTEGER NOT NULL, head BLOB NOT NULL,
            position INTEGER NOT NULL)""")
        t = ""
    else:
        s = f'"{store.schema}"'
        op.execute(f"""CREATE TABLE {s}.dateline_audit_cities (
            city_id uuid PRIMARY KEY, events bigint NOT NULL, head bytea NOT NULL,
            position bigint NOT NULL)""")
        op.execute(append_function(s))
        op.execute(append_recent_function(s))
        t = f"{s}."
    op.execute(
        f"CREATE INDEX dateline_audit_cities_position ON {t}dateline_audit_cities (position)"
    )
    op.execute(f"ALTER TABLE {t}dateline_audit_checkpoints ADD COLUMN cities BIGINT")
    op.execute(f"ALTER TABLE {t}dateline_audit_checkpoints ADD COLUMN cities_root TEXT")


def downgrade(store: StoreConfig) -> None:
    t = "" if store.kind == "sqlite" else f'"{store.schema}".'
    op.execute(f"ALTER TABLE {t}dateline_audit_checkpoints DROP COLUMN cities_root")
    op.execute(f"ALTER TABLE {t}dateline_audit_checkpoints DROP COLUMN cities")
    op.execute(f"DROP TABLE {t}dateline_audit_cities")
    if store.kind != "sqlite":
        op.execute(f'DROP FUNCTION "{store.schema}".dateline_audit_append_recent')
        op.execute(LOOP_FUNCTION.format(s=f'"{store.schema}"'))
