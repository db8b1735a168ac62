"""The record proves itself: tampering with the stored log, on both stores, with the
guards bypassed as a superuser would (SQLite: triggers dropped, as by editing the
file; PostgreSQL: triggers disabled by the tables' owner). `audit verify` names
the first bad event; `--against` a signed checkpoint catches a recomputed
history and a restored older backup."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from dateline.domain.control import EventType, Source
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.audit import checkpoints
from dateline.infrastructure.audit.chain import (
    CONTENT_CHANGED,
    EVENT_MISSING,
    NOT_EXTENDING,
    ORDER_BROKEN,
    chain,
    event_hash,
)
from dateline.infrastructure.audit.checkpoints import Checkpoint, CheckpointError
from dateline.infrastructure.audit.service import VerifyReport, take_checkpoint, verify_store
from dateline.infrastructure.settings import Settings
from tests.audit_support import as_superuser, names, query
from tests.conftest import POSTGRES_URL, ManualClock

GOV, TALIBAN = "Afghan government", "Taliban"


def open_app(settings: Settings, clock: ManualClock) -> Dateline:
    return Dateline(settings, clock=clock, migrate=True)


def register(app: Dateline, slug: str) -> None:
    app.register_city(
        slug=slug, name=slug.title(), province="P", country="Afghanistan", lat=36.7, lon=68.8,
        population=1000, initial_controller=GOV, tracked_since=date(2015, 1, 1),
    )  # fmt: skip


def report(
    app: Dateline, clock: ManualClock, slug: str, kind: EventType, on: date, actor: str
) -> None:
    clock.advance(minutes=1)
    source = Source("Reuters")
    app.report(slug, kind, occurred_on=on, actor=actor, source=source, reported_by="amina")


def build_log(settings: Settings, clock: ManualClock) -> None:
    """Six events in this notification order: alpha-1, beta-1, alpha-2, beta-2, alpha-3, beta-3."""
    app = open_app(settings, clock)
    try:
        register(app, "alpha")
        register(app, "beta")
        report(app, clock, "alpha", EventType.CONTESTED, date(2015, 9, 26), TALIBAN)
        report(app, clock, "beta", EventType.CONTESTED, date(2015, 9, 26), TALIBAN)
        report(app, clock, "alpha", EventType.CAPTURED, date(2015, 9, 28), TALIBAN)
        report(app, clock, "beta", EventType.CAPTURED, date(2015, 9, 28), TALIBAN)
    finally:
        app.close()


def first_bad(report_: VerifyReport) -> tuple[str, str | None]:
    assert not report_.intact, report_.summary()
    assert report_.problem is not None
    return report_.problem["what"], report_.problem["event"]


@pytest.fixture
def logged(settings: Settings, clock: ManualClock) -> Settings:
    build_log(settings, clock)
    return settings


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.key"
    checkpoints.generate_key(path)
    return path


# ------------------------------------------------------------------ the intact log
def test_an_untouched_log_verifies(logged: Settings) -> None:
    result = verify_store(logged.store())
    assert result.intact, result.summary()
    assert result.events == 6
    assert result.summary().startswith("intact: 6 events")


def test_every_event_has_its_entry_in_notification_order(logged: Settings) -> None:
    rows = query(
        logged,
        "SELECT e.{nid}, l.position, l.notification_id FROM {events} e "
        "JOIN {t}dateline_audit_log l ON l.notification_id = e.{nid} ORDER BY e.{nid}",
    )
    assert [r[1] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r[0] for r in rows] == [r[2] for r in rows]


# ------------------------------------------------------------------ tampering
def test_one_byte_changed_is_named(logged: Settings) -> None:
    n = names(logged)
    (state,) = query(logged, "SELECT state FROM {events} WHERE {nid} = 3")[0]
    forged = bytes(state).replace(b"Taliban", b"Talibam")
    assert forged != bytes(state)
    as_superuser(logged, "UPDATE {events} SET state = %s WHERE {nid} = 3", params=(forged,))
    assert n  # names() resolved
    assert first_bad(verify_store(logged.store())) == (CONTENT_CHANGED, "alpha-2")


def test_garbage_bytes_are_named(logged: Settings) -> None:
    as_superuser(logged, "UPDATE {events} SET state = %s WHERE {nid} = 4", params=(b"\xff\x00",))
    assert first_bad(verify_store(logged.store())) == (CONTENT_CHANGED, "beta-2")


@pytest.mark.parametrize(("nid", "event"), [(6, "beta-3"), (3, "alpha-2")])
def test_a_deleted_event_is_named(logged: Settings, nid: int, event: str) -> None:
    as_superuser(logged, f"DELETE FROM {{events}} WHERE {{nid}} = {nid}")
    assert first_bad(verify_store(logged.store())) == (EVENT_MISSING, event)


def test_the_last_event_deleted_with_its_entry_is_named(logged: Settings) -> None:
    as_superuser(
        logged,
        "DELETE FROM {events} WHERE {nid} = 6",
        "DELETE FROM {t}dateline_audit_log WHERE notification_id = 6",
    )
    result = verify_store(logged.store())
    assert first_bad(result) == (EVENT_MISSING, "beta-3")
    assert result.problem is not None
    assert "in the event index but neither stored nor in the log" in result.problem["detail"]


def test_an_event_deleted_with_its_entry_is_named(logged: Settings) -> None:
    as_superuser(
        logged,
        "DELETE FROM {events} WHERE {nid} = 3",
        "DELETE FROM {t}dateline_audit_log WHERE notification_id = 3",
    )
    result = verify_store(logged.store())
    assert first_bad(result) == (EVENT_MISSING, "alpha-2")
    assert result.problem is not None
    assert "log entry 3 and alpha-2 are missing" in result.problem["detail"]
    assert "alpha-3 follows alpha-1" in result.problem["detail"]


def test_two_swapped_events_are_named(logged: Settings) -> None:
    as_superuser(
        logged,
        "UPDATE {events} SET {nid} = 1000 WHERE {nid} = 3",
        "UPDATE {events} SET {nid} = 3 WHERE {nid} = 4",
        "UPDATE {events} SET {nid} = 4 WHERE {nid} = 1000",
    )
    result = verify_store(logged.store())
    assert first_bad(result) == (ORDER_BROKEN, "beta-2")
    assert result.problem is not None
    assert "recorded alpha-2 there" in result.problem["detail"]


def forge_with_recomputed_hashes(settings: Settings) -> None:
    """Change alpha-2's actor and recompute its entry and every entry after it."""
    (state,) = query(settings, "SELECT state FROM {events} WHERE {nid} = 3")[0]
    forged = bytes(state).replace(b"Taliban", b"Talibam")
    rows = query(
        settings,
        "SELECT e.{nid}, e.originator_id, e.originator_version, e.topic, e.state "
        "FROM {events} e ORDER BY e.{nid}",
    )
    hashes = [
        event_hash(UUID(str(c)), v, t, forged if nid == 3 else bytes(s)) for nid, c, v, t, s in rows
    ]
    links = list(chain(bytes(32), hashes))
    statements = ["UPDATE {events} SET state = %s WHERE {nid} = 3"]
    as_superuser(settings, *statements, params=(forged,))
    for position, (h, link) in enumerate(zip(hashes, links, strict=True), start=1):
        as_superuser(
            settings,
            f"UPDATE {{t}}dateline_audit_log SET event_hash = %s, entry_hash = %s "
            f"WHERE position = {position}",
            params=(h, link),
        )


def test_recomputed_hashes_pass_alone_but_not_against_a_checkpoint(
    logged: Settings, key_file: Path
) -> None:
    from datetime import UTC, datetime

    signed = take_checkpoint(logged.store(), key_file, datetime.now(UTC))
    forge_with_recomputed_hashes(logged)
    # The forger also removed the checkpoints kept in the database.
    as_superuser(logged, "DELETE FROM {t}dateline_audit_checkpoints")
    assert verify_store(logged.store()).intact
    result = verify_store(logged.store(), against=signed)
    what, _ = first_bad(result)
    assert what == NOT_EXTENDING
    assert result.problem is not None
    assert "was rewritten" in result.problem["detail"]


def test_a_stored_checkpoint_narrows_where_the_rewrite_begins(
    settings: Settings, clock: ManualClock, key_file: Path
) -> None:
    from datetime import UTC, datetime

    build_log(settings, clock)
    take_checkpoint(settings.store(), key_file, datetime.now(UTC))  # at 6 entries
    forge_with_recomputed_hashes(settings)  # the stored checkpoint stays
    result = verify_store(settings.store())
    assert first_bad(result) == (NOT_EXTENDING, "beta-3")
    assert result.problem is not None
    assert "stored checkpoint #1" in result.problem["detail"]


# ------------------------------------------------------------------ a restored backup
Backup = Callable[[], None]


def backup_and_restore(settings: Settings, tmp_path: Path) -> tuple[Backup, Backup]:
    store = settings.store()
    if store.kind == "sqlite":
        copy = tmp_path / "backup.sqlite"
        assert store.sqlite_path is not None
        path = store.sqlite_path

        def save() -> None:
            with closing(sqlite3.connect(path)) as src, closing(sqlite3.connect(copy)) as dst:
                src.backup(dst)

        def restore() -> None:
            with closing(sqlite3.connect(copy)) as src, closing(sqlite3.connect(path)) as dst:
                src.backup(dst)

        return save, restore
    schema = store.schema
    backup_schema = f"{schema}_bk"

    def tables(pg: psycopg.Connection[Any], in_schema: str) -> list[str]:
        rows = pg.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (in_schema,)
        ).fetchall()
        return [r[0] for r in rows]

    def save_pg() -> None:
        with psycopg.connect(POSTGRES_URL) as pg:
            pg.execute(f'CREATE SCHEMA "{backup_schema}"')  # type: ignore[arg-type]
            for table in tables(pg, schema):
                pg.execute(  # type: ignore[call-overload]
                    f'CREATE TABLE "{backup_schema}"."{table}" AS '
                    f'SELECT * FROM "{schema}"."{table}"'
                )

    def restore_pg() -> None:
        with psycopg.connect(POSTGRES_URL) as pg:
            pg.execute("SET session_replication_role = replica")
            for table in tables(pg, schema):
                pg.execute(f'ALTER TABLE "{schema}"."{table}" DISABLE TRIGGER USER')  # type: ignore[arg-type]
                pg.execute(f'DELETE FROM "{schema}"."{table}"')  # type: ignore[arg-type]
                pg.execute(  # type: ignore[call-overload]
                    f'INSERT INTO "{schema}"."{table}" SELECT * FROM "{backup_schema}"."{table}"'
                )
            pg.execute(  # type: ignore[call-overload]
                f"SELECT setval('\"{schema}\".dateline_events_notification_id_seq', "
                f'(SELECT max(notification_id) FROM "{schema}".dateline_events))'
            )
            pg.execute(f'DROP SCHEMA "{backup_schema}" CASCADE')  # type: ignore[arg-type]
        as_superuser(settings)  # re-enables the guards ALWAYS

    return save_pg, restore_pg


@pytest.mark.parametrize("append_after_restore", [False, True])
def test_a_restored_older_backup_is_caught_against_a_checkpoint(
    settings: Settings, clock: ManualClock, key_file: Path, tmp_path: Path,
    append_after_restore: bool,
) -> None:  # fmt: skip
    from datetime import UTC, datetime

    build_log(settings, clock)
    save, restore = backup_and_restore(settings, tmp_path)
    save()  # six events
    app = open_app(settings, clock)
    try:
        report(app, clock, "alpha", EventType.RETAKEN, date(2015, 10, 1), GOV)
        report(app, clock, "beta", EventType.RETAKEN, date(2015, 10, 1), GOV)
    finally:
        app.close()
    signed = take_checkpoint(settings.store(), key_file, datetime.now(UTC))  # eight
    assert signed.size == 8
    restore()
    if append_after_restore:  # the restored copy goes on: the log forks
        app = open_app(settings, clock)
        try:
            report(app, clock, "beta", EventType.RETAKEN, date(2015, 10, 2), GOV)
        finally:
            app.close()
    assert verify_store(settings.store()).intact
    result = verify_store(settings.store(), against=signed)
    what, _ = first_bad(result)
    assert what == NOT_EXTENDING
    assert result.problem is not None
    size = 7 if append_after_restore else 6
    assert f"the log holds {size} entries but the checkpoint of" in result.problem["detail"]


# ------------------------------------------------------------------ checkpoints
def test_a_checkpoint_with_a_changed_byte_is_refused(logged: Settings, key_file: Path) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    signed = take_checkpoint(logged.store(), key_file, datetime.now(UTC))
    checkpoints.check(signed)
    forged: Checkpoint = replace(signed, size=signed.size - 1)
    with pytest.raises(CheckpointError, match="signature does not match"):
        verify_store(logged.store(), against=forged)
    other = tmp_key = key_file.with_name("other.key")
    public = checkpoints.generate_key(tmp_key)
    assert other.exists()
    with pytest.raises(CheckpointError, match="not by the expected"):
        verify_store(logged.store(), against=signed, public_key=public)


# ------------------------------------------------------------------ guards
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {events} SET topic = topic",
        "DELETE FROM {events}",
        "UPDATE {t}dateline_event_index SET slug = 'x'",
        "DELETE FROM {t}dateline_event_index",
        "UPDATE {t}dateline_audit_log SET version = version",
        "DELETE FROM {t}dateline_audit_log",
    ],
)
def test_rewrites_are_refused_by_the_store(logged: Settings, statement: str) -> None:
    n = names(logged)
    store = logged.store()
    if store.kind == "sqlite":
        with (
            closing(sqlite3.connect(str(store.sqlite_path))) as conn,
            pytest.raises(sqlite3.IntegrityError, match="append-only"),
        ):
            conn.execute(statement.format(**n))
        return
    with psycopg.connect(POSTGRES_URL) as pg:
        # Replication mode skips ordinary triggers, not ENABLE ALWAYS ones.
        pg.execute("SET session_replication_role = replica")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            pg.execute(statement.format(**n))  # type: ignore[arg-type]
    assert verify_store(logged.store()).intact


def test_truncate_is_refused_on_postgres(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("postgresql")
    build_log(settings, ManualClock())
    n = names(settings)
    for table in (n["events"], f"{n['t']}dateline_event_index", f"{n['t']}dateline_audit_log"):
        with psycopg.connect(POSTGRES_URL) as pg:
            pg.execute("SET session_replication_role = replica")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="TRUNCATE"):
                pg.execute(f"TRUNCATE {table} CASCADE")  # type: ignore[arg-type]
    assert verify_store(settings.store()).events == 6


# ------------------------------------------------------------------ the cities root
def test_checkpoints_fold_city_heads_forward_and_verify_rederives_the_root(
    settings: Settings, clock: ManualClock, key_file: Path
) -> None:
    from datetime import UTC, datetime

    build_log(settings, clock)
    first = take_checkpoint(settings.store(), key_file, datetime.now(UTC))
    app = open_app(settings, clock)
    try:
        report(app, clock, "alpha", EventType.RETAKEN, date(2015, 10, 1), GOV)
        register(app, "gamma")
    finally:
        app.close()
    second = take_checkpoint(settings.store(), key_file, datetime.now(UTC))  # folds 2 entries
    assert (first.size, first.cities, second.size, second.cities) == (6, 2, 8, 3)
    assert first.format == second.format == checkpoints.FORMAT
    result = verify_store(settings.store(), against=first)
    assert result.intact, result.summary()
    assert result.roots_checked == [f"the checkpoint of {first.created_at}", "stored checkpoint #2"]
    assert result.summary().endswith(
        f"; cities root of the checkpoint of {first.created_at}, stored checkpoint #2 re-derived "
        f"({result.seconds:.2f} s)"
    )


def test_a_cities_root_the_log_does_not_give_is_named(logged: Settings, key_file: Path) -> None:
    from datetime import UTC, datetime

    from dateline.infrastructure.audit.store import AuditDatabase

    db = AuditDatabase(logged.store())
    with db.connect() as conn:
        size, head = db.head(conn)
    key = checkpoints.load_private_key(key_file)
    wrong = checkpoints.sign(key, size, head.hex(), datetime.now(UTC), 2, "ab" * 32)
    result = verify_store(logged.store(), against=wrong)
    what, _ = first_bad(result)
    assert what == NOT_EXTENDING
    assert result.problem is not None
    assert (
        "signed a cities root abababababababab... over 2 cities at size 6"
        in (result.problem["detail"])
    )


def test_a_format_1_checkpoint_still_checks(logged: Settings, key_file: Path) -> None:
    """Signed before the cities root: format, size, head and created_at; as a file and
    kept in the database."""
    from dateline.infrastructure.audit.store import AuditDatabase

    db = AuditDatabase(logged.store())
    with db.connect() as conn:
        size, head = db.head(conn)
    key = checkpoints.load_private_key(key_file)
    created_at = "2026-11-26T01:00:00.000000Z"
    signature = key.sign(checkpoints.signed_bytes(size, head.hex(), created_at)).hex()
    old = checkpoints.parse(
        {"format": "dateline-checkpoint/1", "size": size, "head": head.hex(),
         "created_at": created_at, "public_key": checkpoints.public_hex(key),
         "signature": signature},
        "old.json",
    )  # fmt: skip
    assert old.cities_root is None
    assert "cities" not in old.as_dict()
    checkpoints.check(old)
    result = verify_store(logged.store(), against=old)
    assert result.intact, result.summary()
    assert result.checkpoints_checked == [f"the checkpoint of {created_at}"]
    with db.connect() as conn:
        db.save_checkpoint(conn, old)
    result = verify_store(logged.store())
    assert result.intact, result.summary()
    assert result.checkpoints_checked == ["stored checkpoint #1"]
    from dataclasses import replace

    with pytest.raises(CheckpointError, match="does not match its size, head and created_at"):
        checkpoints.check(replace(old, size=size - 1))


def test_other_writers_entries_through_the_three_array_function(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """`dateline_audit_append(cities, versions, hashes)` (set-based since 0006) chains
    entries for events a writer other than the recorders inserted, as verify expects."""
    from uuid import uuid4

    settings = make_settings("postgresql")
    build_log(settings, clock)
    schema = f'"{settings.store().schema}"'
    cities = [uuid4(), uuid4()]
    state = b'{"note":"written by another writer"}'
    topic = "dateline.domain.city:City.Registered"
    with psycopg.connect(POSTGRES_URL) as pg:
        pg.execute(  # type: ignore[call-overload]
            f"INSERT INTO {schema}.dateline_events (originator_id, originator_version, topic, "
            "state) SELECT c, v, %s, %s FROM unnest(%s::uuid[], %s::bigint[]) AS u(c, v)",
            (topic, state, [cities[0], cities[1], cities[0]], [1, 1, 2]),
        )
        pg.execute(  # type: ignore[call-overload]
            f"SELECT {schema}.dateline_audit_append(%s::uuid[], %s::bigint[], %s::bytea[])",
            (
                [cities[1], cities[0], cities[0]],  # any order: entries follow notification ids
                [1, 1, 2],
                [
                    event_hash(c, v, topic, state)
                    for c, v in ((cities[1], 1), (cities[0], 1), (cities[0], 2))
                ],
            ),
        )
    result = verify_store(settings.store())
    assert result.intact, result.summary()
    assert result.events == 9
    rows = query(settings, "SELECT position, notification_id FROM {t}dateline_audit_log "
                           "WHERE position > 6 ORDER BY position")  # fmt: skip
    assert [(p, n) for p, n in rows] == [(7, 7), (8, 8), (9, 9)]
