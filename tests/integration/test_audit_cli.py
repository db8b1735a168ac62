"""`dateline audit verify | keygen | checkpoint` on both stores, through `main`."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from dateline.api.cli import main
from dateline.infrastructure.settings import Settings
from tests.conftest import POSTGRES_URL, CliRunner


def change_one_byte(settings: Settings) -> None:
    """kunduz-3's actor Taliban -> Talibam, guards out of the way as a superuser would."""
    store = settings.store()
    if store.kind == "sqlite":
        with closing(sqlite3.connect(str(store.sqlite_path))) as conn, conn:
            conn.execute("DROP TRIGGER dateline_refuse_rewrite_stored_events_update")
            (rowid,) = conn.execute(
                "SELECT e.rowid FROM stored_events e JOIN dateline_event_index i "
                "ON i.city_id = e.originator_id AND i.version = e.originator_version "
                "WHERE i.slug = 'kunduz' AND i.version = 3"
            ).fetchone()
            conn.execute(
                "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), "
                "'Taliban', 'Talibam') AS BLOB) WHERE rowid = ?",
                (rowid,),
            )
        return
    s = f'"{store.schema}"'
    with psycopg.connect(POSTGRES_URL) as pg:
        pg.execute(f"ALTER TABLE {s}.dateline_events DISABLE TRIGGER dateline_refuse_rewrite")  # type: ignore[arg-type]
        pg.execute(  # type: ignore[call-overload]
            f"UPDATE {s}.dateline_events e SET state = convert_to(replace("
            f"convert_from(state, 'UTF8'), 'Taliban', 'Talibam'), 'UTF8') "
            f"FROM {s}.dateline_event_index i WHERE i.city_id = e.originator_id "
            f"AND i.version = e.originator_version AND i.slug = 'kunduz' AND i.version = 3"
        )


def test_verify_an_intact_log(cli: CliRunner) -> None:
    code, out = cli("audit", "verify")
    assert code == 0
    assert out.startswith("intact: 89 events, every entry re-derived, head ")
    code, out = cli("audit", "verify", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["intact"] is True and data["events"] == 89 and data["first_bad_event"] is None


def test_verify_names_the_first_bad_event(
    cli: CliRunner, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    change_one_byte(settings)
    code, out = cli("audit", "verify")
    assert code == 1
    assert out.startswith("BROKEN at kunduz-3: content changed: kunduz-3 no longer hashes")
    err = capsys.readouterr().err
    assert (
        "dateline: error: the record does not verify: first bad: kunduz-3 (content changed)" in err
    )
    code, out = cli("audit", "verify", "--json")
    assert code == 1
    bad = json.loads(out)["first_bad_event"]
    assert (bad["event"], bad["city"], bad["version"], bad["what"]) == (
        "kunduz-3",
        "kunduz",
        3,
        "content changed",
    )


def test_keygen_checkpoint_and_verify_against(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "audit.key"
    code, out = cli("audit", "keygen", "--out", str(key))
    assert code == 0
    public = out.splitlines()[-1].removeprefix("public key: ")
    assert len(bytes.fromhex(public)) == 32
    (tmp_path / "audit.pub").write_text(public + "\n")
    assert cli("audit", "keygen", "--out", str(key))[0] == 1  # never overwrites a key

    assert cli("audit", "checkpoint")[0] == 1  # DATELINE_AUDIT_KEY_FILE unset
    monkeypatch.setenv("DATELINE_AUDIT_KEY_FILE", str(key))
    signed = tmp_path / "checkpoint.json"
    code, out = cli("audit", "checkpoint", "--out", str(signed))
    assert code == 0 and out.startswith("checkpoint: 89 entries, head ")
    assert json.loads(signed.read_text())["size"] == 89

    code, out = cli(
        "audit", "verify", "--against", str(signed), "--public-key", str(tmp_path / "audit.pub")
    )
    assert code == 0
    assert "extends the checkpoint of" in out

    forged = json.loads(signed.read_text())
    forged["size"] = 88
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    code, _ = cli("audit", "verify", "--against", str(tmp_path / "forged.json"))
    assert code == 1


def test_verify_on_a_store_that_is_not_there_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATELINE_DATABASE_URL", f"sqlite:///{tmp_path}/none.sqlite")
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dateline: error: cannot read the audit log of sqlite file ")
    assert "Traceback" not in err


def test_guards_are_reported_and_restored(
    cli: CliRunner, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    store = settings.store()
    code, out = cli("audit", "guards")
    assert code == 0
    assert out.splitlines()[0] == "guards: all 8 triggers in place"
    if store.kind == "postgresql":  # the tests connect as a superuser
        assert out.splitlines()[1].endswith(" is a superuser and could disable the rewrite guards")
    if store.kind == "sqlite":
        with closing(sqlite3.connect(str(store.sqlite_path))) as conn, conn:
            conn.execute("DROP TRIGGER dateline_refuse_rewrite_dateline_audit_log_delete")
        missing = "trigger dateline_refuse_rewrite_dateline_audit_log_delete on "
    else:
        with psycopg.connect(POSTGRES_URL) as pg:
            pg.execute(  # type: ignore[call-overload]
                f'ALTER TABLE "{store.schema}".dateline_audit_log '
                "DISABLE TRIGGER dateline_refuse_rewrite_truncate"
            )
        missing = "trigger dateline_refuse_rewrite_truncate on dateline_audit_log is not "
    code, out = cli("audit", "guards")
    assert code == 1
    assert out.startswith("missing: " + missing)
    assert "1 of 8 guards missing" in capsys.readouterr().err
    code, out = cli("audit", "guards", "--restore")
    assert code == 0
    assert out.splitlines()[0] == "guards: all 8 triggers in place (restored)"
    assert cli("audit", "verify")[0] == 0
