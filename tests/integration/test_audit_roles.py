"""PostgreSQL: migrations run as an owner role, the service as a role of its own that
can append but cannot rewrite the record, nor switch the guards off."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from dateline.api.cli import main
from dateline.infrastructure.audit.roles import role_warnings
from dateline.infrastructure.settings import Settings
from tests.conftest import POSTGRES_URL

# Roles are cluster-wide: fixed names, created once under an advisory lock so that
# parallel test workers do not race.
OWNER, SERVICE = "dateline_test_owner", "dateline_test_service"


def url_as(role: str) -> str:
    parts = urlsplit(POSTGRES_URL)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{role}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def ensure_roles() -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as pg:
        pg.execute("SELECT pg_advisory_lock(hashtext('dateline-test-roles'))")
        try:
            for role in (OWNER, SERVICE):
                exists = pg.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if exists.fetchone() is None:
                    pg.execute(f"CREATE ROLE {role} LOGIN")  # type: ignore[arg-type]
            dbname = pg.execute("SELECT current_database()").fetchone()
            assert dbname is not None
            pg.execute(f'GRANT CREATE ON DATABASE "{dbname[0]}" TO {OWNER}')  # type: ignore[arg-type]
        finally:
            pg.execute("SELECT pg_advisory_unlock(hashtext('dateline-test-roles'))")


@pytest.fixture
def service(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A schema migrated by the owner, seeded by the service role."""
    schema = make_settings("postgresql").postgres_schema  # dropped after the test
    ensure_roles()
    monkeypatch.setenv("DATELINE_DATABASE_URL", url_as(SERVICE))
    monkeypatch.setenv("DATELINE_MIGRATE_DATABASE_URL", url_as(OWNER))
    monkeypatch.setenv("DATELINE_POSTGRES_SCHEMA", schema)
    lines: list[str] = []
    assert main(["migrate"], out=lines.append) == 0
    assert f"service role {SERVICE} granted" in lines[-1]
    assert main(["seed"]) == 0
    return Settings(database_url=url_as(SERVICE), postgres_schema=schema)


def test_the_service_role_appends_and_verifies(service: Settings) -> None:
    lines: list[str] = []
    assert main(["report", "kunduz", "Contested", "--on", "2015-09-26", "--actor", "Taliban",
                 "--source", "WSJ"], out=lines.append) == 0  # fmt: skip
    assert main(["projections", "rebuild"]) == 0  # the read model stays derived and writable
    assert main(["audit", "verify"], out=lines.append) == 0
    assert lines[-1].startswith("intact: 90 events")
    assert role_warnings(service.store()) == []
    as_superuser = Settings(database_url=POSTGRES_URL, postgres_schema=service.postgres_schema)
    (warning,) = role_warnings(as_superuser.store())
    assert "is a superuser and could disable the rewrite guards" in warning


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {s}.dateline_events SET topic = topic",
        "DELETE FROM {s}.dateline_events",
        "TRUNCATE {s}.dateline_events",
        "UPDATE {s}.dateline_event_index SET slug = slug",
        "DELETE FROM {s}.dateline_audit_log",
        "TRUNCATE {s}.dateline_audit_log",
        "ALTER TABLE {s}.dateline_events DISABLE TRIGGER dateline_refuse_rewrite",
        "ALTER TABLE {s}.dateline_audit_log DISABLE TRIGGER ALL",
        "DROP TRIGGER dateline_refuse_rewrite ON {s}.dateline_events",
        "SET session_replication_role = replica",
    ],
)
def test_the_service_role_cannot_rewrite_nor_unguard(service: Settings, statement: str) -> None:
    s = f'"{service.postgres_schema}"'
    with (
        psycopg.connect(url_as(SERVICE)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement.format(s=s))  # type: ignore[arg-type]
    lines: list[str] = []
    assert main(["audit", "verify"], out=lines.append) == 0
