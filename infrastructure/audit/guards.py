"""The database's refusal to rewrite the record: which guards must exist, and the check.

Migration 0004 creates them. At start-up the service checks that every guarded
table still has its triggers (on PostgreSQL: enabled ALWAYS, so replication
mode cannot skip them) and refuses to start if one is missing.
"""

from __future__ import annotations

from typing import Any

from infrastructure.audit.store import AuditDatabase
from infrastructure.settings import ConfigurationError, StoreConfig

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
            "recreate them as migration 0004_audit_log does"
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
