"""Inline projection: an event count on the tracking row, and degraded cities.

`dateline_projection_tracking.events` counts the events the read model
reflects (health reads it instead of counting the log).
`dateline_projection_degraded` names each city whose events the read model
could not apply: the event, the reason, when it was noticed. Reads of that city
say so; `dateline projections rebuild` clears it.

Revision ID: 0004_inline_projection
Revises: 0003_read_model
"""

from __future__ import annotations

from alembic import op

from dateline.infrastructure.settings import StoreConfig

revision = "0004_inline_projection"
down_revision = "0003_read_model"
branch_labels = None
depends_on = None


def _prefix(store: StoreConfig) -> str:
    return "" if store.kind == "sqlite" else f'"{store.schema}".'


def upgrade(store: StoreConfig) -> None:
    t = _prefix(store)
    sqlite = store.kind == "sqlite"
    op.execute(
        f"ALTER TABLE {t}dateline_projection_tracking ADD COLUMN events BIGINT NOT NULL DEFAULT 0"
    )
    op.execute(
        f"UPDATE {t}dateline_projection_tracking "
        f"SET events = (SELECT COUNT(*) FROM {t}dateline_event_facts)"
    )
    uid, instant = ("TEXT", "TEXT") if sqlite else ("uuid", "timestamptz")
    op.execute(f"""CREATE TABLE {t}dateline_projection_degraded (
        city_id {uid} PRIMARY KEY,
        slug TEXT NOT NULL,
        event_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        noticed_at {instant} NOT NULL)""")


def downgrade(store: StoreConfig) -> None:
    t = _prefix(store)
    op.execute(f"DROP TABLE IF EXISTS {t}dateline_projection_degraded")
    op.execute(f"ALTER TABLE {t}dateline_projection_tracking DROP COLUMN events")
