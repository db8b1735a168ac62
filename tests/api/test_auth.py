"""Tokens and roles: the write matrix, private reads, and the token store and CLI."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from dateline.api.cli import main
from dateline.infrastructure.settings import Settings
from dateline.infrastructure.tokens import TokenStore
from tests.api.conftest import Api, bearer, city_body

# Who gets what on each write endpoint.
EXPECTED = {
    "register": {"reader": 403, "reporter": 403, "editor": 201, "admin": 201},
    "report": {"reader": 403, "reporter": 201, "editor": 201, "admin": 201},
    "retract": {"reader": 403, "reporter": 403, "editor": 201, "admin": 201},
}
NOT_AUTHENTICATED = {"no token": 401, "bad token": 401, "revoked token": 401, "not bearer": 401}


def credentials(api: Api) -> dict[str, dict[str, str]]:
    """Headers for every kind of caller: each role, none, a bad, a revoked, a Basic one."""
    revoked = api.token_store.create("revoked-editor", "admin").secret
    api.token_store.revoke("revoked-editor")
    return {
        **{role: api.as_(role) for role in ("reader", "reporter", "editor", "admin")},
        "no token": {},
        "bad token": bearer("dl_not-a-token"),
        "revoked token": bearer(revoked),
        "not bearer": {"Authorization": "Basic ZWQ6c2VjcmV0"},
    }


def write(api: Api, endpoint: str, caller: str, headers: dict[str, str]) -> Any:
    n = sum(c.isalpha() for c in caller) + len(caller)  # distinct per caller
    if endpoint == "register":
        return api.client.post("/cities", json=city_body(f"city-{n}"), headers=headers)
    if endpoint == "report":
        body = {
            "type": "Contested",
            "occurred_on": f"2021-06-{n % 28 + 1:02d}",
            "actor": f"Faction {caller}",
            "source": {"name": "AP"},
        }
        return api.client.post("/cities/testville/events", json=body, headers=headers)
    target = api.report("testville", "Contested", "2021-07-01", f"Militia {caller}").json()["id"]
    url = f"/cities/testville/events/{target}/retraction"
    return api.client.post(url, json={"reason": f"by {caller}"}, headers=headers)


@pytest.mark.parametrize("endpoint", sorted(EXPECTED))
def test_role_matrix(api: Api, endpoint: str) -> None:
    api.register()
    callers = credentials(api)
    got = {}
    for caller, headers in callers.items():
        response = write(api, endpoint, caller, headers)
        got[caller] = response.status_code
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "token" in response.json()["detail"]
        if response.status_code == 403:
            assert "role" in response.json()["detail"]
    assert got == {**EXPECTED[endpoint], **NOT_AUTHENTICATED}


def test_reported_by_and_retracted_by_come_from_the_token(api: Api) -> None:
    api.register()
    reported = api.report("testville", "Contested", "2021-06-20", "Taliban", role="admin")
    assert reported.json()["reported_by"] == "admin-token"
    retraction = api.post(
        "/cities/testville/events/testville-2/retraction", "admin", json={"reason": "dup"}
    )
    assert retraction.json()["reported_by"] == "admin-token"
    assert api.events("testville")[1]["retracted"]["retracted_by"] == "admin-token"


def test_reads_are_public_by_default_but_a_bad_token_is_refused(api: Api) -> None:
    api.register()
    assert api.get("/cities").status_code == 200
    assert api.get("/cities", headers=api.as_("reader")).status_code == 200
    refused = api.get("/cities", headers=bearer("dl_wrong"))
    assert refused.status_code == 401


READS = [
    "/cities",
    "/cities/testville",
    "/cities/testville/status",
    "/cities/testville/timeline",
    "/cities/testville/events",
    "/cities/testville/events/testville-1",
    "/status",
    "/changes?from=2021-01-01",
]


def test_private_reads_need_a_token(make_api: Callable[..., Api]) -> None:
    api = make_api(public_reads=False)
    api.register()
    for path in READS:
        anonymous = api.get(path)
        assert anonymous.status_code == 401, path
        assert "reader token" in anonymous.json()["detail"]
        assert api.get(path, headers=api.as_("reader")).status_code == 200, path
    health = api.get("/health")
    assert (health.status_code, health.json()["events"]) == (200, 1)


def stored_rows(settings: Settings) -> list[tuple[Any, ...]]:
    store = settings.store()
    if store.kind == "sqlite":
        with sqlite3.connect(store.sqlite_path) as conn:  # type: ignore[arg-type]
            return list(conn.execute("SELECT * FROM dateline_tokens ORDER BY name"))
    with psycopg.connect(
        host=store.host, port=store.port, user=store.user, dbname=store.dbname
    ) as conn:
        query = f'SELECT * FROM "{store.schema}".dateline_tokens ORDER BY name'
        return list(conn.execute(query).fetchall())


def test_token_store_keeps_only_the_hash(
    make_settings: Callable[..., Settings], store_kind: str
) -> None:
    from dateline.infrastructure.application import Dateline

    settings = make_settings(store_kind)
    Dateline(settings, migrate=True).close()
    tokens = TokenStore(settings.store())
    try:
        created = tokens.create("amina", "reporter")
        assert created.secret.startswith("dl_") and len(created.secret) > 40
        rows = stored_rows(settings)
        assert len(rows) == 1
        assert created.secret not in " ".join(str(value) for value in rows[0])
        assert hashlib.sha256(created.secret.encode()).hexdigest() in rows[0]
        assert tokens.verify(created.secret) == created.info
        assert tokens.verify(created.secret + "x") is None
        assert tokens.verify("") is None
        with pytest.raises(Exception, match="already exists"):
            tokens.create("amina", "editor")
        with pytest.raises(Exception, match="not usable"):
            tokens.create("has space", "editor")
        with pytest.raises(ValueError):
            tokens.create("boss", "emperor")
        revoked = tokens.revoke("amina")
        assert revoked.revoked_at is not None and not revoked.active
        assert tokens.verify(created.secret) is None
        with pytest.raises(Exception, match="already revoked"):
            tokens.revoke("amina")
        with pytest.raises(Exception, match="no token named"):
            tokens.revoke("nobody")
        assert [(t.name, t.active) for t in tokens.list()] == [("amina", False)]
    finally:
        tokens.close()


def test_tokens_cli(
    make_settings: Callable[..., Settings],
    store_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(store_kind)
    monkeypatch.setenv("DATELINE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("DATELINE_POSTGRES_SCHEMA", settings.postgres_schema)
    if store_kind == "postgresql":
        assert main(["migrate"], out=lambda _: None) == 0

    lines: list[str] = []
    assert main(["tokens", "create", "--name", "you", "--role", "reporter"], lines.append) == 0
    secret = next(word for word in lines[0].split() if word.startswith("dl_"))
    assert "not shown again" in lines[0]

    lines.clear()
    assert (
        main(["tokens", "create", "--name", "ed", "--role", "editor", "--json"], lines.append) == 0
    )
    created = json.loads(lines[0])
    assert (created["name"], created["role"], created["active"]) == ("ed", "editor", True)
    assert created["token"].startswith("dl_")

    lines.clear()
    assert main(["tokens", "list", "--json"], lines.append) == 0
    listed = json.loads(lines[0])
    assert [(t["name"], t["role"], t["active"]) for t in listed] == [
        ("ed", "editor", True),
        ("you", "reporter", True),
    ]
    assert secret not in lines[0] and "token" not in listed[0]

    lines.clear()
    assert main(["tokens", "revoke", "you"], lines.append) == 0
    assert "revoked" in lines[0]
    assert main(["tokens", "revoke", "you"], lines.append) == 1
    assert "already revoked" in capsys.readouterr().err
    assert main(["tokens", "create", "--name", "you", "--role", "reader"], lines.append) == 1
    assert "already exists" in capsys.readouterr().err

    lines.clear()
    assert main(["tokens", "list"], lines.append) == 0
    assert "you" in lines[0] and "reporter" in lines[0]

    tokens = TokenStore(settings.store())
    try:
        assert tokens.verify(secret) is None  # revoked
        assert tokens.verify(created["token"]) is not None
    finally:
        tokens.close()


def test_a_token_revoked_elsewhere_stops_within_the_verified_time(
    make_settings: Callable[..., Settings], store_kind: str
) -> None:
    """The server remembers a verified token briefly (no lookup per request); a
    revocation by another process (the command line) takes effect within that."""
    import time

    from dateline.infrastructure.application import Dateline
    from dateline.infrastructure.tokens import VERIFIED_SECONDS

    settings = make_settings(store_kind)
    Dateline(settings, migrate=True).close()
    server, command_line = TokenStore(settings.store()), TokenStore(settings.store())
    try:
        secret = command_line.create("amina", "reporter").secret
        assert server.verify(secret) is not None
        command_line.revoke("amina")
        time.sleep(VERIFIED_SECONDS + 0.1)
        assert server.verify(secret) is None
    finally:
        server.close()
        command_line.close()
