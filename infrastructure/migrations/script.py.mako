"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from alembic import op

from infrastructure.settings import StoreConfig

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade(store: StoreConfig) -> None:
    ${upgrades if upgrades else "pass"}


def downgrade(store: StoreConfig) -> None:
    ${downgrades if downgrades else "pass"}
