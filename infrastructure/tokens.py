"""API tokens: a name, a role, and only the SHA-256 of the secret.

The secret is shown once, when the token is created; afterwards a presented
bearer token is hashed and looked up by its hash, and the stored hash is
compared in constant time. Revoking keeps the row (names are never reused), so
the audit trail of who reported what stays unambiguous.

The table (`dateline_tokens`, migration 0002) lives beside the event store: in
the SQLite file, or in the PostgreSQL schema.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier
from psycopg_pool import ConnectionPool

from dateline.infrastructure.settings import StoreConfig

TOKEN_PREFIX = "dl_"
VERIFIED_SECONDS = 2.0  # how long a verified token is trusted without a lookup
VERIFIED_MAX = 10_000
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,99}$")


class Role(StrEnum):
    """Ordered: each role may do everything the roles before it may."""

    READER = "reader"
    REPORTER = "reporter"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class TokenError(Exception):
    """A token command cannot be carried out; the message says why."""


class TokenNameTaken(TokenError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"a token named {name!r} already exists (names are never reused, even after "
            "revocation): choose another name"
        )


class TokenNotFound(TokenError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no token named {name!r}")


class TokenAlreadyRevoked(TokenError):
    def __init__(self, name: str, revoked_at: datetime) -> None:
        super().__init__(f"token {name!r} was already revoked at {revoked_at.isoformat()}")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class NewToken:
    info: TokenInfo
    secret: str  # shown once, never stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise TokenError(
            f"token name {name!r} is not usable: 1-100 characters, letters, digits and "
            "._@:+- only, starting with a letter or digit (it is recorded as reported_by)"
        )
    return name


def _instant_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _info(row: tuple[Any, ...]) -> TokenInfo:
    name, role, created_at, revoked_at = row[:4]
    created = _instant(created_at)
    assert created is not None
    return TokenInfo(str(name), Role(role), created, _instant(revoked_at))


class TokenStore:
    """Create, list, revoke and verify tokens in the store's `dateline_tokens` table."""

    def __init__(
        self,
        store: StoreConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        connect_timeout: float = 2.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.connect_timeout = connect_timeout
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] | None = None
        self._pool_guard = threading.Lock()
        self._verified: dict[str, tuple[float, TokenInfo]] = {}  # token hash -> (until, info)
        if store.kind == "sqlite":
            self._placeholder = "?"
            self._table = "dateline_tokens"
        else:
            self._placeholder = "%s"
            self._table = (
                SQL("{}.{}")
                .format(Identifier(store.schema), Identifier("dateline_tokens"))
                .as_string(None)
            )

    # ------------------------------------------------------------- commands
    def create(self, name: str, role: Role | str) -> NewToken:
        name = check_name(name)
        role = Role(role)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created_at = self.clock()
        stored_at: Any = _instant_text(created_at) if self.store.kind == "sqlite" else created_at
        try:
            with self._cursor(write=True) as cursor:
                cursor.execute(
                    self._sql(
                        "INSERT INTO {t} (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)"
                    ),
                    (name, role.value, hash_secret(secret), stored_at),
                )
        except (sqlite3.IntegrityError, psycopg.errors.UniqueViolation):
            raise TokenNameTaken(name) from None
        return NewToken(TokenInfo(name, role, created_at.astimezone(UTC)), secret)

    def revoke(self, name: str) -> TokenInfo:
        self._verified.clear()
        revoked_at = self.clock()
        stored_at: Any = _instant_text(revoked_at) if self.store.kind == "sqlite" else revoked_at
        with self._cursor(write=True) as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE {t} SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL "
                    "RETURNING name, role, created_at, revoked_at"
                ),
                (stored_at, name),
            )
            row = cursor.fetchone()
        if row is not None:
            return _info(row)
        existing = self.get(name)
        if existing is None:
            raise TokenNotFound(name)
        assert existing.revoked_at is not None
        raise TokenAlreadyRevoked(name, existing.revoked_at)

    # -------------------------------------------------------------- queries
    def get(self, name: str) -> TokenInfo | None:
        with self._cursor() as cursor:
            cursor.execute(
                self._sql("SELECT name, role, created_at, revoked_at FROM {t} WHERE name = ?"),
                (name,),
            )
            row = cursor.fetchone()
        return None if row is None else _info(row)

    def list(self) -> list[TokenInfo]:
        with self._cursor() as cursor:
            cursor.execute(
                self._sql("SELECT name, role, created_at, revoked_at FROM {t} ORDER BY name")
            )
            return [_info(row) for row in cursor.fetchall()]

    def verify(self, secret: str) -> TokenInfo | None:
        """The active token whose secret this is, or None (unknown or revoked).

        An active token is remembered for VERIFIED_SECONDS, sparing a database
        round trip on each request: revoked here, it stops at once; revoked by
        another process (`dateline tokens revoke`), within that time."""
        if not secret or len(secret) > 512:
            return None
        presented = hash_secret(secret)
        now = time.monotonic()
        remembered = self._verified.get(presented)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        with self._cursor() as cursor:
            cursor.execute(
                self._sql(
                    "SELECT name, role, created_at, revoked_at, token_hash FROM {t} "
                    "WHERE token_hash = ?"
                ),
                (presented,),
            )
            row = cursor.fetchone()
        if row is None or not hmac.compare_digest(str(row[4]), presented):
            return None
        info = _info(row)
        if not info.active:
            return None
        if len(self._verified) >= VERIFIED_MAX:  # only real tokens get here; stay bounded
            self._verified.clear()
        self._verified[presented] = (now + VERIFIED_SECONDS, info)
        return info

    def close(self) -> None:
        with self._pool_guard:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # ------------------------------------------------------------ internals
    def _sql(self, template: str) -> str:
        return template.replace("?", self._placeholder).replace("{t}", self._table)

    @contextmanager
    def _cursor(self, *, write: bool = False) -> Iterator[Any]:
        if self.store.kind == "sqlite":
            assert self.store.sqlite_path is not None
            lite = sqlite3.connect(self.store.sqlite_path, timeout=10)
            try:
                with lite:  # commits, or rolls back on error
                    if write:
                        lite.execute("BEGIN IMMEDIATE")
                    yield lite.cursor()
            finally:
                lite.close()
            return
        with self._postgres_pool().connection() as pg, pg.cursor() as cursor:
            yield cursor  # the pool commits on success and rolls back on error

    def _postgres_pool(self) -> ConnectionPool[psycopg.Connection[tuple[Any, ...]]]:
        with self._pool_guard:
            if self._pool is None:
                s = self.store
                self._pool = ConnectionPool(
                    kwargs={
                        "host": s.host,
                        "port": s.port,
                        "user": s.user,
                        "password": s.password,
                        "dbname": s.dbname,
                        "row_factory": tuple_row,
                        "connect_timeout": max(1, round(self.connect_timeout)),
                    },
                    min_size=1,
                    max_size=8,
                    # During an outage: a 503 within the connect timeout, and a
                    # connection again as soon as the database is back.
                    timeout=self.connect_timeout,
                    reconnect_timeout=self.connect_timeout,
                    check=ConnectionPool.check_connection,
                    open=True,
                    name="dateline-tokens",
                )
            return self._pool
