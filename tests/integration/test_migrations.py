"""Alembic owns every table: upgrade, downgrade and re-upgrade on the real servers."""

from __future__ import annotations

import sqlite3
from datetime import date

import psycopg
import pytest

from dateline.domain.control import EventType, Source
from dateline.infrastructure import migrations
from dateline.infrastructure.application import Dateline, StoreNotMigrated
from dateline.infrastructure.settings import Settings, StoreConfig
from tests.conftest import POSTGRES_URL


def tables(store: StoreConfig) -> set[str]:
    if store.kind == "sqlite":
        with sqlite3.connect(str(store.sqlite_path)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {r[0] for r in rows} - {"alembic_version"}
    with psycopg.connect(POSTGRES_URL) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (store.schema,),
        ).fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


def write_and_read(settings: Settings) -> None:
    app = Dateline(settings)
    try:
        app.register_city(slug="herat", name="Herat", province="Herat", country="Afghanistan",
                          lat=34.34, lon=62.2, population=None, initial_controller="A",
                          tracked_since=date(2015, 1, 1))  # fmt: skip
        app.report("herat", EventType.CAPTURED, occurred_on=date(2021, 8, 12), actor="B",
                   source=Source("AP"), reported_by="t")  # fmt: skip
        app.take_snapshot(app.find_city("herat").id)  # type: ignore[union-attr]
        assert app.status("herat", date(2021, 8, 13)).state.controller == "B"
    finally:
        app.close()


def test_upgrade_downgrade_and_upgrade_again(settings: Settings) -> None:
    store = settings.store()
    migrations.upgrade(store)
    assert migrations.current_revision(store) == migrations.head_revision()
    created = tables(store)
    assert {"dateline_event_index", "dateline_tokens"} <= created
    write_and_read(settings)  # the library runs with CREATE_TABLE=false on these tables

    migrations.downgrade(store, "base")
    assert migrations.current_revision(store) is None
    assert tables(store) == set()

    migrations.upgrade(store)
    assert tables(store) == created
    write_and_read(settings)


def test_postgres_refuses_to_start_on_an_unmigrated_schema(make_settings: object) -> None:
    settings = make_settings("postgresql")  # type: ignore[operator]
    with pytest.raises(StoreNotMigrated, match="dateline migrate"):
        Dateline(settings)


def test_the_library_tables_match_what_eventsourcing_expects(make_settings: object) -> None:
    settings = make_settings("postgresql")  # type: ignore[operator]
    store = settings.store()
    migrations.upgrade(store)
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute(
            f'SELECT * FROM "{store.schema}".dateline_tracking'  # the library's marker row
        ).fetchall()
        types = conn.execute(
            "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = %s AND typname = 'stored_event_uuid'",
            (store.schema,),
        ).fetchall()
    assert row == [("__migration__", 1)]
    assert types == [("stored_event_uuid",)]
