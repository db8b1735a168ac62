"""The event store: the library's tables and the event index.

On PostgreSQL this is exactly the DDL eventsourcing 9.5 would create (composite
type, events with notification ids, snapshots, tracking with its
'__migration__' row), so the application runs with CREATE_TABLE=false. On
SQLite the library's table names carry no prefix.

Revision ID: 0001_event_store
Revises:
"""

from __future__ import annotations

from alembic import op

from dateline.infrastructure.settings import StoreConfig

revision = "0001_event_store"
down_revision = None
branch_labels = None
depends_on = None

AUTOVACUUM = """WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000,
    autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01)"""


def upgrade(store: StoreConfig) -> None:
    if store.kind == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgres(f'"{store.schema}"')


def downgrade(store: StoreConfig) -> None:
    if store.kind == "sqlite":
        for table in ("dateline_event_index", "tracking", "stored_snapshots", "stored_events"):
            op.execute(f"DROP TABLE IF EXISTS {table}")
        return
    s = f'"{store.schema}"'
    for table in (
        "dateline_event_index",
        "dateline_tracking",
        "dateline_snapshots",
        "dateline_events",
    ):
        op.execute(f"DROP TABLE IF EXISTS {s}.{table}")
    op.execute(f"DROP FUNCTION IF EXISTS {s}.es_insert_events_uuid")
    op.execute(f"DROP TYPE IF EXISTS {s}.stored_event_uuid")


def _upgrade_sqlite() -> None:
    op.execute("""CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER,
        topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))""")
    op.execute("""CREATE TABLE stored_snapshots (originator_id TEXT, originator_version INTEGER,
        topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID""")
    op.execute("""CREATE TABLE tracking (application_name TEXT, notification_id INTEGER,
        PRIMARY KEY (application_name)) WITHOUT ROWID""")
    op.execute("INSERT INTO tracking VALUES ('__migration__', 1)")
    op.execute("""CREATE TABLE dateline_event_index (
        city_id TEXT NOT NULL, version INTEGER NOT NULL, slug TEXT NOT NULL,
        event_type TEXT NOT NULL, recorded_at TEXT NOT NULL, occurred_on TEXT,
        report_id TEXT, PRIMARY KEY (city_id, version)) WITHOUT ROWID""")
    op.execute("""CREATE UNIQUE INDEX dateline_event_index_report_id
        ON dateline_event_index (city_id, report_id) WHERE report_id IS NOT NULL""")
    op.execute("""CREATE INDEX dateline_event_index_recorded_at
        ON dateline_event_index (city_id, recorded_at)""")


def _upgrade_postgres(s: str) -> None:
    op.execute(f"""CREATE TYPE {s}.stored_event_uuid AS (
        originator_id uuid, originator_version bigint, topic text, state bytea)""")
    op.execute(f"""CREATE TABLE {s}.dateline_events (
        originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text,
        state bytea, notification_id bigserial,
        PRIMARY KEY (originator_id, originator_version)) {AUTOVACUUM}""")
    op.execute(f"""CREATE UNIQUE INDEX dateline_events_notification_id_idx
        ON {s}.dateline_events (notification_id ASC)""")
    op.execute(f"""CREATE TABLE {s}.dateline_snapshots (
        originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text,
        state bytea, PRIMARY KEY (originator_id, originator_version)) {AUTOVACUUM}""")
    op.execute(f"""CREATE TABLE {s}.dateline_tracking (
        application_name text NOT NULL, notification_id bigint,
        PRIMARY KEY (application_name)) {AUTOVACUUM}""")
    op.execute(f"INSERT INTO {s}.dateline_tracking VALUES ('__migration__', 1)")
    # Only used with POSTGRES_ENABLE_DB_FUNCTIONS=y (off: it skips the table lock
    # that keeps notification order); created so the schema matches the library's.
    op.execute(f"""CREATE OR REPLACE FUNCTION {s}.es_insert_events_uuid(
        events {s}.stored_event_uuid[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$
        BEGIN SET LOCAL lock_timeout = '0s'; NOTIFY dateline_events; RETURN QUERY
        INSERT INTO {s}.dateline_events AS t (originator_id, originator_version, topic, state)
        SELECT originator_id, originator_version, topic, state FROM unnest(events)
        RETURNING notification_id; END; $BODY$""")
    op.execute(f"""CREATE TABLE {s}.dateline_event_index (
        city_id uuid NOT NULL, version bigint NOT NULL, slug text NOT NULL,
        event_type text NOT NULL, recorded_at timestamptz NOT NULL, occurred_on date,
        report_id text, PRIMARY KEY (city_id, version))""")
    op.execute(f"""CREATE UNIQUE INDEX dateline_event_index_report_id
        ON {s}.dateline_event_index (city_id, report_id) WHERE report_id IS NOT NULL""")
    op.execute(f"""CREATE INDEX dateline_event_index_recorded_at
        ON {s}.dateline_event_index (city_id, recorded_at)""")
