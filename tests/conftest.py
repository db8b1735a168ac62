"""Stores for tests: a fresh SQLite file, or a fresh schema on the real PostgreSQL.

PostgreSQL comes from DATELINE_TEST_POSTGRES_URL (default: the local server's
`test` database). If it cannot be reached the PostgreSQL cases are skipped on a
developer's machine and fail under CI=true: they are never silently skipped there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from dateline.infrastructure.settings import Settings

POSTGRES_URL = os.environ.get(
    "DATELINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STORES = ("sqlite", "postgresql")


def postgres_available() -> str | None:
    """None if reachable, else why not."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as error:
        return f"PostgreSQL at {POSTGRES_URL} unreachable: {error}"


def require_postgres() -> None:
    problem = postgres_available()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{problem} (CI=true: PostgreSQL tests must run)")
    pytest.skip(problem)


def drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def make_settings(tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Build Settings for a brand-new, empty store of the given kind."""
    schemas: list[str] = []

    def make(kind: str, **overrides: object) -> Settings:
        if kind == "sqlite":
            path = tmp_path / f"store-{uuid.uuid4().hex[:8]}.sqlite"
            return Settings(database_url=f"sqlite:///{path}", **overrides)  # type: ignore[arg-type]
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        schemas.append(schema)
        return Settings(database_url=POSTGRES_URL, postgres_schema=schema, **overrides)  # type: ignore[arg-type]

    yield make
    for schema in schemas:
        drop_schema(schema)


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], store_kind: str) -> Settings:
    return make_settings(store_kind)


class ManualClock:
    """A clock tests move by hand, so record times are exact and repeatable."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


CliRunner = Callable[..., tuple[int, str]]


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The `dateline` command line on the test's store, migrated and seeded."""
    from dateline.api.cli import main

    monkeypatch.setenv("DATELINE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("DATELINE_POSTGRES_SCHEMA", settings.postgres_schema)

    def run(*argv: str) -> tuple[int, str]:
        lines: list[str] = []
        code = main(list(argv), out=lines.append)
        return code, "\n".join(lines)

    assert run("migrate")[0] == 0
    assert run("seed")[0] == 0
    return run


def screenshot_folder(factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests put their screenshots: DATELINE_SCREENSHOTS, or
    `screenshots/` in this run's pytest temporary folder (shared by xdist workers)."""
    named = os.environ.get("DATELINE_SCREENSHOTS")
    if named:
        return Path(named)
    base = factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "screenshots"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Say where the page's screenshots are, so a person can look at them."""
    factory = getattr(config, "_tmp_path_factory", None)
    if os.environ.get("PYTEST_XDIST_WORKER") or factory is None:
        return
    path = screenshot_folder(factory)
    taken = sorted(p.name for p in path.glob("*.png")) if path.exists() else []
    if taken:
        terminalreporter.write_line(f"page screenshots ({len(taken)}): {path}")
