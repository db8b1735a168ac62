"""Damage is named, never a 500: an undecodable event and a gap in a city's log, on
HTTP and the command line, both stores (guards bypassed as a superuser would)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from dateline.api.cli import main
from dateline.domain.control import EventType, Source
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings
from tests.api.conftest import open_api
from tests.audit_support import as_superuser, query


def damaged_store(make_settings: Callable[..., Settings], kind: str) -> Settings:
    """testville: Registered, Contested (v2), Retaken (v3); the store closed again."""
    settings = make_settings(kind, append_attempts=2)
    app = Dateline(settings, migrate=True)
    try:
        app.register_city(
            slug="testville", name="Testville", province="P", country="Afghanistan",
            lat=34.5, lon=69.2, population=1000, initial_controller="Afghan government",
            tracked_since=date(2015, 1, 1),
        )  # fmt: skip
        for kind_, on, actor in (
            (EventType.CONTESTED, date(2015, 9, 26), "Taliban"),
            (EventType.RETAKEN, date(2015, 9, 27), "Afghan government"),
        ):
            app.report("testville", kind_, occurred_on=on, actor=actor, source=Source("AP"),
                       reported_by="amina")  # fmt: skip
    finally:
        app.close()
    return settings


def nid_of(settings: Settings, version: int) -> int:
    rows = query(settings, "SELECT {nid}, originator_version FROM {events} ORDER BY {nid}")
    return next(nid for nid, v in rows if v == version)


def test_an_undecodable_event_is_named_on_http_and_the_command_line(
    make_settings: Callable[..., Settings],
    store_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = damaged_store(make_settings, store_kind)
    nid = nid_of(settings, 2)
    as_superuser(settings, f"UPDATE {{events}} SET state = %s WHERE {{nid}} = {nid}",
                 params=(b"\xff\xfe garbage",))  # fmt: skip
    for api in open_api(settings, store_kind):
        # Reads come from the read model, made when the event was whole; what
        # needs the stored event itself (a write, the auditor's replay) names it.
        assert api.get("/cities/testville/events").status_code == 200
        for response in (
            api.get("/cities/testville/audit"),
            api.report("testville", "Contested", "2015-10-01", "Taliban"),
        ):
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["damaged_event"] == "testville-2"
            assert body["detail"].startswith("testville-2 cannot be decoded (")
            assert "dateline audit verify" in body["detail"]
    monkeypatch.setenv("DATELINE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("DATELINE_POSTGRES_SCHEMA", settings.postgres_schema)
    assert main(["audit", "replay", "testville"], out=lambda _: None) == 1
    err = capsys.readouterr().err
    assert err.startswith("dateline: error: testville-2 cannot be decoded (")
    assert "Traceback" not in err
    assert main(["audit", "verify"], out=lambda _: None) == 1


def test_a_gap_in_a_citys_log_is_named_not_a_409(
    make_settings: Callable[..., Settings],
    store_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = damaged_store(make_settings, store_kind)
    as_superuser(settings, f"DELETE FROM {{events}} WHERE {{nid}} = {nid_of(settings, 3)}")
    for api in open_api(settings, store_kind):
        response = api.report("testville", "Contested", "2015-10-01", "Taliban")
        assert response.status_code == 503, response.text
        assert response.json()["detail"].startswith(
            "testville's log has a gap: testville-3 is recorded in the index and the hash log "
            "but missing from the stored events"
        )
    monkeypatch.setenv("DATELINE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("DATELINE_POSTGRES_SCHEMA", settings.postgres_schema)
    monkeypatch.setenv("DATELINE_APPEND_ATTEMPTS", "2")
    code = main(["report", "testville", "Contested", "--on", "2015-10-01", "--actor", "Taliban",
                 "--source", "AP"])  # fmt: skip
    assert code == 1
    assert "testville's log has a gap: testville-3" in capsys.readouterr().err
