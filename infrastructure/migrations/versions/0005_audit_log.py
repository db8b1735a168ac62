"""The hash-linked audit log, signed checkpoints, and triggers refusing rewrites.

`dateline_audit_log` has one entry per event in notification order (position
1, 2, 3...): the event's hash and the chain hash linking it to the entry before
(infrastructure/audit/chain.py). `dateline_audit_checkpoints` keeps the signed
(size, head) pairs. On PostgreSQL `dateline_audit_append` extends the chain
inside the append's transaction.

Guards: UPDATE, DELETE (and on PostgreSQL TRUNCATE) are refused on the events,
the event index, the audit log and the checkpoints. PostgreSQL triggers are
ENABLE ALWAYS, so `session_replication_role = replica` does not skip them;
only the tables' owner (the migration role) or a superuser can disable them.
Snapshots, tracking and the read model stay writable: they are derived.

Revision ID: 0005_audit_log
Revises: 0004_inline_projection
"""

from __future__ import annotations

from alembic import op

from dateline.infrastructure.audit.guards import guard_statements
from dateline.infrastructure.settings import StoreConfig

revision = "0005_audit_log"
down_revision = "0004_inline_projection"
branch_labels = None
depends_on = None

GUARD = "dateline_refuse_rewrite"
GUARDED_SQLITE = (
    "stored_events",
    "dateline_event_index",
    "dateline_audit_log",
    "dateline_audit_checkpoints",
)
GUARDED_POSTGRES = (
    "dateline_events",
    "dateline_event_index",
    "dateline_audit_log",
    "dateline_audit_checkpoints",
)


def upgrade(store: StoreConfig) -> None:
    if store.kind == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgres(f'"{store.schema}"', store.schema)


def downgrade(store: StoreConfig) -> None:
    if store.kind == "sqlite":
        for table in GUARDED_SQLITE:
            for op_name in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {GUARD}_{table}_{op_name}")
        for table in ("dateline_audit_checkpoints", "dateline_audit_log"):
            op.execute(f"DROP TABLE IF EXISTS {table}")
        return
    s = f'"{store.schema}"'
    for table in GUARDED_POSTGRES:
        op.execute(f"DROP TRIGGER IF EXISTS {GUARD} ON {s}.{table}")
        op.execute(f"DROP TRIGGER IF EXISTS {GUARD}_truncate ON {s}.{table}")
    op.execute(f"DROP FUNCTION IF EXISTS {s}.dateline_audit_append")
    op.execute(f"DROP TABLE IF EXISTS {s}.dateline_audit_checkpoints")
    op.execute(f"DROP TABLE IF EXISTS {s}.dateline_audit_log")
    op.execute(f"DROP FUNCTION IF EXISTS {s}.{GUARD}")


def _upgrade_sqlite() -> None:
    op.execute("""CREATE TABLE dateline_audit_log (
        position INTEGER PRIMARY KEY, notification_id INTEGER NOT NULL UNIQUE,
        city_id TEXT NOT NULL, version INTEGER NOT NULL,
        event_hash BLOB NOT NULL, entry_hash BLOB NOT NULL)""")
    op.execute("CREATE INDEX dateline_audit_log_city ON dateline_audit_log (city_id, position)")
    op.execute("""CREATE TABLE dateline_audit_checkpoints (
        id INTEGER PRIMARY KEY, size INTEGER NOT NULL, head TEXT NOT NULL,
        created_at TEXT NOT NULL, public_key TEXT NOT NULL, signature TEXT NOT NULL)""")
    # Events written before this migration get their entries now.
    _backfill_sqlite()
    for statement in guard_statements("sqlite", ""):
        op.execute(statement)


def _backfill_sqlite() -> None:
    from uuid import UUID

    from dateline.infrastructure.audit.chain import GENESIS, chain, event_hash

    bind = op.get_bind()
    rows = bind.exec_driver_sql(
        "SELECT rowid, originator_id, originator_version, topic, state "
        "FROM stored_events ORDER BY rowid"
    ).fetchall()
    hashes = [event_hash(UUID(c), v, t, bytes(s)) for _, c, v, t, s in rows]
    values = [
        (i, row[0], row[1], row[2], h, link)
        for i, (row, h, link) in enumerate(
            zip(rows, hashes, chain(GENESIS, hashes), strict=True), start=1
        )
    ]
    if values:
        bind.exec_driver_sql("INSERT INTO dateline_audit_log VALUES (?, ?, ?, ?, ?, ?)", values)


def _upgrade_postgres(s: str, schema: str) -> None:
    op.execute(f"""CREATE TABLE {s}.dateline_audit_log (
        position bigint PRIMARY KEY, notification_id bigint NOT NULL UNIQUE,
        city_id uuid NOT NULL, version bigint NOT NULL,
        event_hash bytea NOT NULL, entry_hash bytea NOT NULL)""")
    op.execute(
        f"CREATE INDEX dateline_audit_log_city ON {s}.dateline_audit_log (city_id, position)"
    )
    op.execute(f"""CREATE TABLE {s}.dateline_audit_checkpoints (
        id bigserial PRIMARY KEY, size bigint NOT NULL, head text NOT NULL,
        created_at text NOT NULL, public_key text NOT NULL, signature text NOT NULL)""")
    # Appends hold the events table's EXCLUSIVE lock; the lock here keeps entries
    # in commit order even if that ever changes. Event hashes come from Python
    # (the same function verify uses); the chain is computed here, in order.
    op.execute(f"""CREATE FUNCTION {s}.dateline_audit_append(
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
        END; $BODY$""")
    _backfill_postgres(s)
    for statement in guard_statements("postgresql", schema):
        op.execute(statement)


def _backfill_postgres(s: str) -> None:
    from dateline.infrastructure.audit.chain import event_hash

    bind = op.get_bind()
    rows = bind.exec_driver_sql(
        f"SELECT originator_id, originator_version, topic, state FROM {s}.dateline_events "
        "ORDER BY notification_id"
    ).fetchall()
    if rows:
        bind.exec_driver_sql(
            f"SELECT {s}.dateline_audit_append(%(c)s::uuid[], %(v)s::bigint[], %(h)s::bytea[])",
            {
                "c": [r[0] for r in rows],
                "v": [r[1] for r in rows],
                "h": [event_hash(r[0], r[1], r[2], bytes(r[3])) for r in rows],
            },
        )
