"""PostgreSQL roles: an owner that migrates, a service role that cannot undo the guards.

`dateline migrate` connects as DATELINE_MIGRATE_DATABASE_URL's role, which owns
every table and trigger; the service connects as DATELINE_DATABASE_URL's role,
granted here what the library needs and no ownership, so it cannot ALTER,
DISABLE or DROP the triggers. It keeps UPDATE and DELETE on the log's tables
because the library's `LOCK TABLE ... IN EXCLUSIVE MODE` on every append needs
one of them; the triggers refuse the statements themselves.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from dateline.infrastructure.settings import Settings, StoreConfig

GRANTS = (
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
    "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role}",
)


def connect(store: StoreConfig) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=store.host,
        port=store.port,
        user=store.user,
        password=store.password,
        dbname=store.dbname,
        autocommit=True,
    )


def grant_service_role(settings: Settings) -> str | None:
    """After migrating as the owner, grant the service role its privileges.

    Returns what was done, or None when there is no separate service role
    (SQLite, or no DATELINE_MIGRATE_DATABASE_URL, or the same user)."""
    owner, service = settings.migrate_store(), settings.store()
    if owner.kind != "postgresql" or not settings.migrate_database_url:
        return None
    if owner.user == service.user:
        return None
    with connect(owner) as conn:
        for grant in GRANTS:
            conn.execute(
                SQL(grant).format(schema=Identifier(owner.schema), role=Identifier(service.user))
            )
    return (
        f"service role {service.user} granted SELECT, INSERT, UPDATE, DELETE on schema "
        f"{owner.schema} (owner {owner.user}; the triggers refuse rewrites, and only the "
        "owner can disable them)"
    )


def role_warnings(store: StoreConfig) -> list[str]:
    """Why the connected role could switch the guards off: superuser, or table owner."""
    if store.kind != "postgresql":
        return []
    with connect(store) as conn:
        row = conn.execute(
            "SELECT r.rolsuper, bool_or(pg_has_role(current_user, c.relowner, 'USAGE')) "
            "FROM pg_roles r, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE r.rolname = current_user AND n.nspname = %s "
            "AND c.relname = 'dateline_events' GROUP BY r.rolsuper",
            (store.schema,),
        ).fetchone()
    if row is None:
        return []
    warnings = []
    if row[0]:
        warnings.append(f"{store.user} is a superuser and could disable the rewrite guards")
    elif row[1]:
        warnings.append(f"{store.user} owns the event tables and could disable the rewrite guards")
    return warnings
