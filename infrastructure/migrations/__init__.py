"""Alembic migrations for both stores; run them with `dateline migrate`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from infrastructure.settings import StoreConfig

MIGRATIONS_DIR = Path(__file__).parent


def alembic_config(store: StoreConfig) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["store"] = store
    return config


def upgrade(store: StoreConfig, revision: str = "head") -> None:
    if store.kind == "sqlite" and store.sqlite_path is not None:
        store.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(store), revision)


def downgrade(store: StoreConfig, revision: str = "base") -> None:
    command.downgrade(alembic_config(store), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config(StoreConfig("sqlite"))).get_current_head()


def current_revision(store: StoreConfig) -> str | None:
    engine = create_engine(store.sqlalchemy_url())
    try:
        with engine.connect() as connection:
            options = {"version_table_schema": store.schema} if store.kind == "postgresql" else {}
            context = MigrationContext.configure(connection, opts=options)
            return context.get_current_revision()
    finally:
        engine.dispose()
