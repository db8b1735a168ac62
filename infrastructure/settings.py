"""Configuration, read once from DATELINE_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_SQLITE_FILE = "dateline.sqlite"


class ConfigurationError(ValueError):
    """A setting cannot be used; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATELINE_", extra="ignore")

    # Unset: an embedded SQLite file in the working directory.
    database_url: str | None = None
    postgres_schema: str = Field(default="dateline", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    # A snapshot every N events per city keeps replays short.
    snapshot_interval: int = Field(default=50, ge=2)
    # Optimistic-concurrency retries for one append before giving up with a 409.
    append_attempts: int = Field(default=10, ge=1)
    # Seconds an append waits for the PostgreSQL table lock before failing.
    postgres_lock_timeout: int = Field(default=5, ge=0)
    # Seconds `dateline migrate` keeps retrying its first connection (a database
    # still starting beside it) before it gives up.
    migrate_retry_seconds: float = Field(default=60, ge=0)
    postgres_pool_size: int = Field(default=5, ge=1)
    postgres_max_overflow: int = Field(default=10, ge=0)
    # Seconds a request waits for a PostgreSQL connection (and to connect):
    # while the server is down, every request answers 503 within about this.
    postgres_connect_timeout: float = Field(default=2.0, gt=0, le=60)
    # Most commands one group-commit transaction holds.
    writer_batch_size: int = Field(default=64, ge=1, le=1000)
    # Cities the writer keeps decided in memory (LRU), so a write does not reload.
    city_cache_size: int = Field(default=2000, ge=1)
    # Audit: the Ed25519 key that signs checkpoints (`dateline audit keygen`),
    # and how often the service signs one: after N new events or M minutes, whichever first.
    audit_key_file: Path | None = None
    audit_checkpoint_events: int = Field(default=1000, ge=1)
    audit_checkpoint_minutes: float = Field(default=60.0, gt=0)
    # PostgreSQL: the owner role `dateline migrate` connects as (unset: DATABASE_URL's).
    migrate_database_url: str | None = None
    # HTTP: reads without a token (writes always need one).
    public_reads: bool = True
    # HTTP: comma-separated origins a page on another site may call from. `*` lets
    # any origin read; writes are allowed only from origins named explicitly.
    cors_origins: str = "*"

    def store(self) -> StoreConfig:
        return StoreConfig.from_url(self.database_url, self.postgres_schema)

    def cors_read_origins(self) -> list[str]:
        return ["*"] if "*" in self._origins() else self.cors_write_origins()

    def cors_write_origins(self) -> list[str]:
        return [o for o in self._origins() if o != "*"]

    def _origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    def migrate_store(self) -> StoreConfig:
        """Where `dateline migrate` connects: the owner role if one is set."""
        return StoreConfig.from_url(
            self.migrate_database_url or self.database_url, self.postgres_schema
        )


@dataclass(frozen=True)
class StoreConfig:
    """Where the event store lives: one SQLite file or one PostgreSQL schema."""

    kind: str  # "sqlite" | "postgresql"
    sqlite_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    dbname: str = "postgres"
    schema: str = "dateline"

    @classmethod
    def from_url(cls, url: str | None, schema: str = "dateline") -> StoreConfig:
        if not url:
            return cls("sqlite", sqlite_path=Path.cwd() / DEFAULT_SQLITE_FILE)
        try:
            parsed = make_url(url)
        except ArgumentError:
            parsed = None
        scheme = parsed.drivername if parsed else url.partition("://")[0] if "://" in url else ""
        backend = scheme.split("+")[0]
        if parsed is not None and backend == "sqlite":
            path = parsed.database
            if parsed.host or not path or path == ":memory:":
                raise ConfigurationError(
                    "DATELINE_DATABASE_URL: use sqlite:///relative/or/absolute/path.sqlite "
                    f"(a file; got {url!r})"
                )
            return cls("sqlite", sqlite_path=Path(path).absolute())
        if parsed is not None and backend in ("postgresql", "postgres"):
            if not parsed.host or not parsed.database:
                raise ConfigurationError(
                    "DATELINE_DATABASE_URL: expected postgresql://user[:password]@host[:port]/dbname"
                )
            return cls(
                "postgresql",
                host=parsed.host,
                port=parsed.port or 5432,
                user=parsed.username or "postgres",
                password=parsed.password or "",
                dbname=parsed.database,
                schema=schema,
            )
        raise ConfigurationError(
            f"DATELINE_DATABASE_URL: unsupported scheme {scheme!r}; "
            "use postgresql://... or sqlite:///..., or leave it unset for the embedded store"
        )

    def sqlalchemy_url(self) -> URL:
        if self.kind == "sqlite":
            return URL.create("sqlite", database=str(self.sqlite_path))
        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password or None,
            host=self.host,
            port=self.port,
            database=self.dbname,
        )

    def describe(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite file {self.sqlite_path}"
        return f"postgresql {self.user}@{self.host}:{self.port}/{self.dbname} schema {self.schema}"
