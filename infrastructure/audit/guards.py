"""The database's refusal to rewrite the record: which guards must exist, and the check.

Migration 0004 creates them. At start-up the service checks that every guarded
table still has its triggers (on PostgreSQL: enabled ALWAYS, so replication
mode cannot skip them) and refuses to start if one is missing.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import psycopg

from dateline.infrastructure.audit.store import AuditDatabase
from dateline.infrastructure.settings import ConfigurationError, StoreConfig

GUARD = "dateline_refuse_rewrite"
GUARDED = {
    "sqlite": ("stored_events", "dateline_event_index", "dateline_audit_log",
               "dateline_audit_checkpoints"),
    "postgresql": ("dateline_events", "dateline_event_index", "dateline_audit_log",
                   "dateline_audit_checkpoints"),
}  # fmt: skip


class GuardMissing(ConfigurationError):
    """A table of the record accepts rewrites; the service must not start."""

    def __init__(self, store: StoreConfig, missing: list[str]) -> None:
        super().__init__(
            f"{store.describe()}: the record is not protected against rewrites: "
            f"{'; '.join(missing)}. Someone with the owner's or a superuser's rights removed "
            "them: run `dateline audit verify` to see whether the record was changed, then "
            "`dateline audit guards --restore` as the owner role"
        )
        self.missing = missing


def expected(kind: str) -> dict[str, list[str]]:
    """Guarded table -> the trigger names it must carry."""
    if kind == "sqlite":
        return {t: [f"{GUARD}_{t}_update", f"{GUARD}_{t}_delete"] for t in GUARDED[kind]}
    return {t: [GUARD, f"{GUARD}_truncate"] for t in GUARDED[kind]}


def missing_guards(store: StoreConfig) -> list[str]:
    """What is missing, one phrase per trigger ('' list: all in place)."""
    db = AuditDatabase(store)
    with db.connect() as conn:
        present = _present(conn, store)
    missing = []
    for table, triggers in expected(store.kind).items():
        for trigger in triggers:
            state = present.get((table, trigger))
            if state is None:
                missing.append(f"trigger {trigger} on {table} is missing")
            elif state != "A":
                missing.append(f"trigger {trigger} on {table} is not ENABLE ALWAYS ({state!r})")
    return missing


def _present(conn: Any, store: StoreConfig) -> dict[tuple[str, str], str]:
    if store.kind == "sqlite":
        rows = conn.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
        return {(t, n): "A" for t, n in rows}
    rows = conn.execute(
        "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND NOT t.tgisinternal",
        (store.schema,),
    ).fetchall()
    return {(t, n): str(e) for t, n, e in rows}


def check_guards(store: StoreConfig) -> None:
    missing = missing_guards(store)
    if missing:
        raise GuardMissing(store, missing)


def guard_statements(kind: str, schema: str) -> list[str]:
    """The DDL that puts every guard in place; safe to run again (migration 0004 and
    `dateline audit guards --restore`)."""
    if kind == "sqlite":
        statements = []
        for table in GUARDED["sqlite"]:
            for op in ("update", "delete"):
                name = f"{GUARD}_{table}_{op}"
                statements.append(f"DROP TRIGGER IF EXISTS {name}")
                statements.append(
                    f"CREATE TRIGGER {name} BEFORE {op.upper()} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, 'dateline: {op.upper()} on {table} is refused: "
                    "the record is append-only (see dateline audit verify)'); END"
                )
        return statements
    s = f'"{schema}"'
    statements = [
        f"""CREATE OR REPLACE FUNCTION {s}.{GUARD}() RETURNS trigger LANGUAGE plpgsql AS $BODY$
        BEGIN
            RAISE EXCEPTION 'dateline: % on %.% is refused: the record is append-only '
                '(see dateline audit verify)', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END; $BODY$"""
    ]
    for table in GUARDED["postgresql"]:
        statements += [
            f"DROP TRIGGER IF EXISTS {GUARD} ON {s}.{table}",
            f"DROP TRIGGER IF EXISTS {GUARD}_truncate ON {s}.{table}",
            f"CREATE TRIGGER {GUARD} BEFORE UPDATE OR DELETE ON {s}.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION {s}.{GUARD}()",
            f"CREATE TRIGGER {GUARD}_truncate BEFORE TRUNCATE ON {s}.{table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {s}.{GUARD}()",
            f"ALTER TABLE {s}.{table} ENABLE ALWAYS TRIGGER {GUARD}",
            f"ALTER TABLE {s}.{table} ENABLE ALWAYS TRIGGER {GUARD}_truncate",
        ]
    return statements


def restore_guards(owner: StoreConfig) -> None:
    """Put every guard back, connected as the tables' owner (or a superuser)."""
    statements = guard_statements(owner.kind, owner.schema)
    if owner.kind == "sqlite":
        with closing(sqlite3.connect(str(owner.sqlite_path))) as conn, conn:
            for statement in statements:
                conn.execute(statement)
        return
    with psycopg.connect(
        host=owner.host, port=owner.port, user=owner.user, password=owner.password,
        dbname=owner.dbname,
    ) as pg:  # fmt: skip
        for statement in statements:
            pg.execute(statement.encode())
