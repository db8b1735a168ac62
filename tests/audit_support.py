"""Tamper helpers for the audit tests: SQL on the store with the guards out of the way,
as a superuser would (SQLite: triggers dropped; PostgreSQL: disabled, then re-enabled)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import psycopg

from dateline.infrastructure.settings import Settings
from tests.conftest import POSTGRES_URL

GUARD = "dateline_refuse_rewrite"
PG_GUARDED = ("dateline_events", "dateline_event_index", "dateline_audit_log",
              "dateline_audit_checkpoints")  # fmt: skip
SQLITE_GUARDED = ("stored_events", "dateline_event_index", "dateline_audit_log",
                  "dateline_audit_checkpoints")  # fmt: skip


# ------------------------------------------------------------------ helpers
def names(settings: Settings) -> dict[str, str]:
    """Table names and the notification-id column for `{events}`, `{nid}`, `{t}`."""
    if settings.store().kind == "sqlite":
        return {"t": "", "events": "stored_events", "nid": "rowid"}
    schema = f'"{settings.store().schema}".'
    return {"t": schema, "events": f"{schema}dateline_events", "nid": "notification_id"}


def as_superuser(settings: Settings, *statements: str, params: Any = None) -> None:
    """Run statements with the rewrite guards out of the way, as a superuser would."""
    n = names(settings)
    store = settings.store()
    if store.kind == "sqlite":
        with closing(sqlite3.connect(str(store.sqlite_path))) as conn, conn:
            guards = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?",
                (f"{GUARD}%",),
            ).fetchall()
            for name, _ in guards:
                conn.execute(f"DROP TRIGGER {name}")
            for statement in statements:
                conn.execute(statement.format(**n).replace("%s", "?"), params or ())
            for _, sql in guards:  # put back, as an intruder covering tracks would
                conn.execute(sql)
        return
    with psycopg.connect(POSTGRES_URL) as pg:
        for table in PG_GUARDED:
            pg.execute(f"ALTER TABLE {n['t']}{table} DISABLE TRIGGER {GUARD}")  # type: ignore[arg-type]
            pg.execute(f"ALTER TABLE {n['t']}{table} DISABLE TRIGGER {GUARD}_truncate")  # type: ignore[arg-type]
        for statement in statements:
            pg.execute(statement.format(**n), params)  # type: ignore[arg-type]
        for table in PG_GUARDED:
            pg.execute(f"ALTER TABLE {n['t']}{table} ENABLE ALWAYS TRIGGER {GUARD}")  # type: ignore[arg-type]
            pg.execute(f"ALTER TABLE {n['t']}{table} ENABLE ALWAYS TRIGGER {GUARD}_truncate")  # type: ignore[arg-type]


def query(settings: Settings, statement: str) -> list[tuple[Any, ...]]:
    store = settings.store()
    n = names(settings)
    if store.kind == "sqlite":
        with closing(sqlite3.connect(str(store.sqlite_path))) as conn:
            return conn.execute(statement.format(**n)).fetchall()
    with psycopg.connect(POSTGRES_URL) as pg:
        return pg.execute(statement.format(**n)).fetchall()  # type: ignore[arg-type]
