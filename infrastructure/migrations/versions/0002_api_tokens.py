"""API tokens: a name, a role, and only the hash of the secret.

Revision ID: 0002_api_tokens
Revises: 0001_event_store
"""

from __future__ import annotations

from alembic import op

from dateline.infrastructure.settings import StoreConfig

revision = "0002_api_tokens"
down_revision = "0001_event_store"
branch_labels = None
depends_on = None


def _table(store: StoreConfig) -> str:
    return "dateline_tokens" if store.kind == "sqlite" else f'"{store.schema}".dateline_tokens'


def upgrade(store: StoreConfig) -> None:
    instant = "TEXT" if store.kind == "sqlite" else "timestamptz"
    op.execute(f"""CREATE TABLE {_table(store)} (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('reader', 'reporter', 'editor', 'admin')),
        token_hash TEXT NOT NULL UNIQUE,
        created_at {instant} NOT NULL,
        revoked_at {instant})""")


def downgrade(store: StoreConfig) -> None:
    op.execute(f"DROP TABLE IF EXISTS {_table(store)}")
