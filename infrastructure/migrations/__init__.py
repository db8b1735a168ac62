"""Alembic migrations for both stores; run them with `dateline migrate`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from dateline.infrastructure.settings import StoreConfig

MIGRATIONS_DIR = Path(__file__).parent
RETRY_PAUSE_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 5


class StoreUnreachable(Exception):
    """The store did not accept a connection within the time allowed."""


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


def wait_until_reachable(
    store: StoreConfig,
    seconds: float,
    *,
    report: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Connect to the store, retrying for up to `seconds` (a database that is still
    starting, e.g. beside this container); each failure is reported with the time
    left. Raises StoreUnreachable once the time is up. SQLite needs no wait."""
    if store.kind != "postgresql":
        return
    engine = create_engine(
        store.sqlalchemy_url(), connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    )
    deadline = clock() + seconds
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return
            except OperationalError as error:
                reason = str(error.orig or error).strip().splitlines()[0]
                left = deadline - clock()
                if left <= 0:
                    raise StoreUnreachable(
                        f"{store.describe()} is unreachable ({reason}); gave up after "
                        f"{seconds:g} s (DATELINE_MIGRATE_RETRY_SECONDS)"
                    ) from None
                report(f"waiting for {store.describe()}: {reason}; retrying for {left:.0f} s")
                sleep(min(RETRY_PAUSE_SECONDS, left))
    finally:
        engine.dispose()
