"""GET /audit/checkpoint, the service's own checkpoints, and its refusal to start
over a record whose guards are gone."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from dateline.infrastructure.audit import checkpoints
from dateline.infrastructure.audit.guards import GuardMissing
from dateline.infrastructure.settings import Settings
from tests.api.conftest import Api, open_api
from tests.conftest import POSTGRES_URL, ManualClock


def test_no_checkpoint_yet_is_a_404_naming_the_command(
    make_settings: Callable[..., Settings], store_kind: str
) -> None:
    for api in open_api(make_settings(store_kind), store_kind):
        response = api.get("/audit/checkpoint")
        assert response.status_code == 404
        assert "dateline audit checkpoint" in response.json()["detail"]


def test_the_service_signs_checkpoints_and_serves_the_latest(
    make_settings: Callable[..., Settings], store_kind: str, tmp_path: Path
) -> None:
    key = tmp_path / "audit.key"
    public = checkpoints.generate_key(key)
    settings = make_settings(store_kind, audit_key_file=key, audit_checkpoint_events=3)
    for api in open_api(settings, store_kind):
        checkpointer = api.client.app.state.checkpointer  # type: ignore[attr-defined]
        assert checkpointer.tick() is None  # an empty log: nothing to sign
        api.register("alpha")
        api.register("beta")
        assert checkpointer.tick() is None  # 2 events: fewer than 3
        api.register("gamma")
        made = checkpointer.tick()
        assert made is not None and made.size == 3
        response = api.get("/audit/checkpoint")
        assert response.status_code == 200
        served = checkpoints.parse(response.json(), "GET /audit/checkpoint")
        assert served.size == 3 and served.head == made.head
        checkpoints.check(served, public)  # signed by the operator's key


def drop_one_guard(settings: Settings) -> None:
    store = settings.store()
    if store.kind == "sqlite":
        with closing(sqlite3.connect(str(store.sqlite_path))) as conn, conn:
            conn.execute("DROP TRIGGER dateline_refuse_rewrite_dateline_audit_log_delete")
        return
    with psycopg.connect(POSTGRES_URL) as pg:
        pg.execute(  # type: ignore[call-overload]
            f'ALTER TABLE "{store.schema}".dateline_events DISABLE TRIGGER dateline_refuse_rewrite'
        )


def test_the_service_refuses_to_start_without_its_guards(
    make_settings: Callable[..., Settings], store_kind: str
) -> None:
    settings = make_settings(store_kind)
    for _ in open_api(settings, store_kind):  # migrated, guarded, then closed
        pass
    drop_one_guard(settings)
    with pytest.raises(GuardMissing) as refused:
        for _ in open_api(settings, store_kind):
            pass
    expected = (
        "dateline_refuse_rewrite_dateline_audit_log_delete on dateline_audit_log is missing"
        if store_kind == "sqlite"
        else "dateline_refuse_rewrite on dateline_events is not ENABLE ALWAYS"
    )
    assert expected in str(refused.value)


def test_the_auditors_replay(seeded: Api) -> None:
    response = seeded.get("/cities/kunduz/audit")
    assert response.status_code == 200, response.text
    events = response.json()
    assert [e["id"] for e in events] == [f"kunduz-{v}" for v in range(1, 11)]
    capture = events[2]
    assert capture["state_before"]["status"] == "contested"
    assert capture["state_after"]["controller"] == "Taliban"
    assert capture["admitted_by"].startswith("captured-by-other: Taliban does not control Kunduz")
    assert capture["changed"][0]["from"] == "2015-09-28"
    assert capture["changed"][0]["after"]["event_id"] == "kunduz-3"
    assert len(bytes.fromhex(capture["log"]["entry_hash"])) == 32
    earlier = seeded.get("/cities/kunduz/audit", params={"known_at": capture["recorded_at"]})
    assert [e["id"] for e in earlier.json()] == ["kunduz-1", "kunduz-2", "kunduz-3"]
    assert seeded.get("/cities/kundz/audit").status_code == 404


def test_what_changed_in_the_record(make_api: Callable[..., Api]) -> None:
    clock = ManualClock()
    api = make_api(clock)
    api.register("testville")
    clock.advance(hours=1)
    t1 = clock.now.isoformat()
    clock.advance(hours=1)
    assert api.report("testville", "Captured", "2015-09-28", "Taliban").status_code == 201
    clock.advance(hours=1)
    assert api.report("testville", "Contested", "2015-09-20", "Taliban").status_code == 201
    clock.advance(hours=1)
    retract = api.post("/cities/testville/events/testville-3/retraction", "editor",
                       json={"reason": "unconfirmed"})  # fmt: skip
    assert retract.status_code == 201, retract.text
    clock.advance(hours=1)
    t2 = clock.now.isoformat()
    response = api.get("/cities/testville/audit/diff", params={"from": t1, "to": t2})
    assert response.status_code == 200, response.text
    diff = response.json()
    assert [e["id"] for e in diff["recorded"]] == ["testville-2", "testville-3"]
    assert [e["id"] for e in diff["retracted"]] == ["testville-4"]
    assert diff["changed"] == [
        {
            "from": "2015-09-28",
            "to": None,
            "before": {"status": "held", "controller": "Afghan government",
                       "contested_by": None, "since": "2015-01-01", "event_id": "testville-1"},
            "after": {"status": "held", "controller": "Taliban", "contested_by": None,
                      "since": "2015-09-28", "event_id": "testville-2"},
        }
    ]  # fmt: skip
    backwards = api.get("/cities/testville/audit/diff", params={"from": t2, "to": t1})
    assert backwards.status_code == 422
    assert backwards.json()["detail"][0]["field"] == "to"
    missing = api.get("/cities/testville/audit/diff", params={"from": t1})
    assert missing.status_code == 422
