"""The bitemporal read model: control periods, event facts, cities, tracking.

`dateline_control_periods` holds one rectangle per row: a valid period
[valid_from, valid_to) on the world's calendar and a record period
[known_from, known_to) on record time (NULL end = open). Rows are only ever
inserted, or closed by setting `known_to`. "As of D, as known at T" is the one
row containing (D, T); on PostgreSQL an exclusion constraint (GiST, btree_gist)
guarantees there is at most one, and is the index the point query probes.

`dateline_event_facts` is one row per event as the auditors' log shows it
(retraction details attached to the withdrawn event), for `/changes` and for
the city's version as known at T. `dateline_rm_cities` answers the city's
descriptive fields without loading the aggregate. `dateline_projection_tracking`
is the position in the event log up to which all of this reflects it.

Revision ID: 0003_read_model
Revises: 0002_api_tokens
"""

from __future__ import annotations

from alembic import op

from dateline.infrastructure.settings import StoreConfig

revision = "0003_read_model"
down_revision = "0002_api_tokens"
branch_labels = None
depends_on = None

TABLES = (
    "dateline_projection_tracking",
    "dateline_event_facts",
    "dateline_control_periods",
    "dateline_rm_cities",
)
PROJECTION = "read_model"


def upgrade(store: StoreConfig) -> None:
    if store.kind == "sqlite":
        _upgrade(
            prefix="", uid="TEXT", day="TEXT", instant="TEXT", real="REAL", rowid=" WITHOUT ROWID"
        )
        return
    # Two migrations racing on one database must not both create the extension.
    op.execute("SELECT pg_advisory_xact_lock(hashtext('dateline:btree_gist'))")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    s = f'"{store.schema}".'
    _upgrade(
        prefix=s, uid="uuid", day="date", instant="timestamptz", real="double precision", rowid=""
    )
    # At most one row per (city, day, instant); its GiST index serves the point query.
    op.execute(f"""ALTER TABLE {s}dateline_control_periods
        ADD CONSTRAINT dateline_control_periods_no_overlap EXCLUDE USING gist (
            city_id WITH =,
            daterange(valid_from, valid_to) WITH &&,
            tstzrange(known_from, known_to) WITH &&)""")


def downgrade(store: StoreConfig) -> None:
    prefix = "" if store.kind == "sqlite" else f'"{store.schema}".'
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
    # btree_gist stays: other schemas in the database may use it.


def _upgrade(*, prefix: str, uid: str, day: str, instant: str, real: str, rowid: str) -> None:
    t = prefix
    op.execute(f"""CREATE TABLE {t}dateline_rm_cities (
        city_id {uid} PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        province TEXT NOT NULL,
        country TEXT NOT NULL,
        lat {real} NOT NULL,
        lon {real} NOT NULL,
        population BIGINT,
        initial_controller TEXT NOT NULL,
        tracked_since {day} NOT NULL,
        registered_at {instant} NOT NULL){rowid}""")
    op.execute(f"""CREATE TABLE {t}dateline_control_periods (
        city_id {uid} NOT NULL,
        valid_from {day} NOT NULL,
        valid_to {day},
        known_from {instant} NOT NULL,
        known_to {instant},
        status TEXT NOT NULL CHECK (status IN ('held', 'contested', 'unknown')),
        controller TEXT,
        contested_by TEXT,
        since {day},
        event_id TEXT,
        version BIGINT NOT NULL,
        PRIMARY KEY (city_id, valid_from, known_from),
        CHECK (valid_to IS NULL OR valid_to > valid_from),
        CHECK (known_to IS NULL OR known_to > known_from)){rowid}""")
    # The rows the projection diffs against, and the current state.
    op.execute(f"""CREATE INDEX dateline_control_periods_open
        ON {t}dateline_control_periods (city_id, valid_from) WHERE known_to IS NULL""")
    op.execute(f"""CREATE TABLE {t}dateline_event_facts (
        city_id {uid} NOT NULL,
        version BIGINT NOT NULL,
        slug TEXT NOT NULL,
        event_type TEXT NOT NULL,
        recorded_at {instant} NOT NULL,
        occurred_on {day},
        actor TEXT,
        source_name TEXT,
        source_url TEXT,
        source_quote TEXT,
        note TEXT,
        report_id TEXT,
        reported_by TEXT,
        retracts TEXT,
        reason TEXT,
        retracted_in TEXT,
        retraction_reason TEXT,
        retracted_by TEXT,
        retracted_at {instant},
        PRIMARY KEY (city_id, version)){rowid}""")
    # The city's version as known at T: one backward probe.
    op.execute(f"""CREATE INDEX dateline_event_facts_known
        ON {t}dateline_event_facts (city_id, recorded_at, version)""")
    # /changes: a range of world dates across all cities.
    op.execute(f"""CREATE INDEX dateline_event_facts_occurred_on
        ON {t}dateline_event_facts (occurred_on, slug, version)""")
    op.execute(f"""CREATE TABLE {t}dateline_projection_tracking (
        projection TEXT PRIMARY KEY,
        notification_id BIGINT NOT NULL){rowid}""")
    op.execute(f"INSERT INTO {t}dateline_projection_tracking VALUES ('{PROJECTION}', 0)")
