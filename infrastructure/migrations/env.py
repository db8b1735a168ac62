"""Alembic environment: the target comes from Dateline's settings (or the caller)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from dateline.infrastructure.settings import Settings, StoreConfig

config = context.config
store: StoreConfig = config.attributes.get("store") or Settings().store()


def run_migrations_online() -> None:
    engine = create_engine(store.sqlalchemy_url())
    with engine.connect() as connection:
        version_table_schema = None
        if store.kind == "postgresql":
            # alembic's own version table lives beside the tables it describes.
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"'))
            connection.commit()
            version_table_schema = store.schema
        context.configure(
            connection=connection, target_metadata=None, version_table_schema=version_table_schema
        )
        with context.begin_transaction():
            context.run_migrations(store=store)
    engine.dispose()


run_migrations_online()
