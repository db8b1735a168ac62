"""The set-based rebuild: equal to the incremental read model on any log the
domain accepts (both stores); readers see complete answers while it runs, and
appends made meanwhile are kept (PostgreSQL); undecodable events degrade their
city only."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from dateline.domain.control import EventType
from dateline.domain.errors import DomainError
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.read_model import rebuild
from dateline.infrastructure.read_model.queries import CityDegraded
from dateline.infrastructure.settings import Settings
from dateline.seeds.loader import load_seeds
from tests.audit_support import as_superuser
from tests.conftest import ManualClock
from tests.integration.test_read_model import (
    GOV,
    NRF,
    TALIBAN,
    dump,
    log_size,
    register,
    report,
    sql,
)
from tests.integration.test_read_model_property import Command, commands, run_script

examples = itertools.count()


def schema_objects(settings: Settings) -> list[tuple[Any, ...]]:
    """The read-model tables' indexes and constraints, by name and definition."""
    if settings.store().kind == "sqlite":  # a renamed table's name is quoted in its DDL
        return sql(
            settings,
            "SELECT type, name, tbl_name, replace(sql, '\"', '') FROM sqlite_master "
            "WHERE tbl_name LIKE 'dateline_%' ORDER BY name",
        )
    schema = settings.store().schema
    return sql(
        settings,
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        f"WHERE connamespace = '\"{schema}\"'::regnamespace "
        "UNION ALL SELECT tablename, indexname, indexdef FROM pg_indexes "
        f"WHERE schemaname = '{schema}' ORDER BY 2, 3",
    )


def test_rebuild_equals_incremental_on_random_logs(
    make_settings: Callable[..., Settings], store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backdated reports, retractions, several writes in one instant, cities
    registered at any moment: the rebuilt tables equal the incremental ones,
    row for row, position and event count included, and keep their indexes.
    Small fetches and drains: rows are loaded while the fold goes on, and a
    retraction may reach a fact already loaded."""
    monkeypatch.setattr(rebuild, "FETCH_SIZE", 7)
    monkeypatch.setattr(rebuild, "DRAIN_EVENTS", 10)
    clock = ManualClock()
    settings = make_settings(store_kind, snapshot_interval=3)
    app = Dateline(settings, clock=clock, migrate=True)
    objects = schema_objects(settings)

    @hypothesis_settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(script=commands)
    def check(script: list[Command]) -> None:
        run_script(app, clock, f"r{next(examples)}", script)
        incremental = dump(settings)
        assert app.projection.rebuild() == log_size(app)
        assert dump(settings) == incremental
        assert schema_objects(settings) == objects

    try:
        check()
        assert app.check_read_model(samples=20)[0] == []
    finally:
        app.close()


# ------------------------------------------------------ while it runs (PostgreSQL)
@pytest.fixture
def pg_app(make_settings: Callable[..., Settings]) -> Iterator[Dateline]:
    application = Dateline(make_settings("postgresql"), migrate=True)
    yield application
    application.close()


def test_readers_see_complete_answers_and_appends_are_kept_during_a_rebuild(
    pg_app: Dateline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader asks every city's status and the all-cities map while rebuilds
    run and a writer appends: every answer is complete (every city, each at
    least at the version it had before), and what was appended meanwhile is in
    the rebuilt read model."""
    app = pg_app
    load_seeds(app)
    monkeypatch.setattr(rebuild, "FETCH_SIZE", 10)  # a slower stream: more overlap
    monkeypatch.setattr(rebuild, "DRAIN_EVENTS", 20)
    slugs = app.city_slugs()
    floor = {slug: app.read_model.status(slug).version for slug in slugs}
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            everyone = {v.city.slug: v for v in app.read_model.statuses(date(2030, 1, 1))}
            if sorted(everyone) != slugs:
                problems.append(f"statuses: {len(everyone)} of {len(slugs)} cities")
            for slug in slugs:
                seen = app.read_model.status(slug)
                if seen.version < floor[slug] or seen.state.event_id is None:
                    problems.append(f"{slug}: v{seen.version} {seen.state}")
            reads[0] += 1

    written: list[str] = []

    def writer() -> None:
        rng = random.Random(7)
        day = date(2021, 9, 1)
        while not stop.is_set():
            day += timedelta(days=1)
            kind, actor = rng.choice(list(EventType)), rng.choice((GOV, TALIBAN, NRF))
            try:
                written.append(report(app, "kunduz", kind, day, actor).event.id)
            except DomainError:  # refused by the rules
                continue

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            app.projection.rebuild()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert problems == []
    assert reads[0] > 0 and written
    assert app.read_model.position() == log_size(app)
    facts = {e.id for e in app.read_model.history("kunduz")}
    assert set(written) <= facts
    after = dump(app.settings)
    app.projection.rebuild()  # alone: the same tables
    assert dump(app.settings) == after
    assert app.check_read_model(samples=10)[0] == []


# ---------------------------------------------------------------- degraded
def test_an_undecodable_event_degrades_its_city_only_and_check_names_it(
    settings: Settings, clock: ManualClock
) -> None:
    """A stored event damaged so it no longer decodes: the rebuild marks its
    city degraded at that event, keeps the city's earlier rows, rebuilds every
    other city, and counts only the events it applied."""
    app = Dateline(settings, clock=clock, migrate=True)
    try:
        register(app, "kunduz")
        register(app, "herat")
        clock.advance(hours=1)
        report(app, "kunduz", EventType.CAPTURED, date(2015, 9, 28), TALIBAN)
        clock.advance(hours=1)
        report(app, "herat", EventType.CONTESTED, date(2015, 9, 20), TALIBAN)
        clock.advance(hours=1)
        report(app, "kunduz", EventType.RETAKEN, date(2015, 10, 13), GOV)  # notification 5
        as_superuser(
            settings, "UPDATE {events} SET state = %s WHERE {nid} = 5", params=(b"\xff\x00",)
        )
        differences, _ = app.check_read_model(samples=5)  # the check's fold cannot read it
        assert [(d.city, d.what) for d in differences] == [("kunduz", "log")]
        assert "version 3" in differences[0].fold
        assert app.projection.rebuild() == 4
        degraded = app.read_model.degraded()
        assert [(d.slug, d.event_id) for d in degraded] == [("kunduz", "kunduz-3")]
        assert "UndecodableEvent" in degraded[0].reason
        with pytest.raises(CityDegraded, match="kunduz-3"):
            app.read_model.status("kunduz")
        assert {p.version for p in app.read_model.periods("kunduz")} == {1, 2}
        herat = app.read_model.status("herat", date(2015, 9, 21))
        assert herat.state.contested_by == TALIBAN and herat.version == 2
        assert app.read_model.progress() == (5, 4)
    finally:
        app.close()


def test_a_role_that_may_not_swap_tables_replaces_the_rows(
    pg_app: Dateline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service role granted only DML (no CREATE on the schema, not the tables'
    owner) loads session tables and replaces the live rows in the final phase:
    the same tables as incremental, and the same table objects as before."""
    app = pg_app
    load_seeds(app)
    added = report(app, "kunduz", EventType.CONTESTED, date(2015, 9, 27), TALIBAN)
    app.retract("kunduz", added.event.id, reason="duplicate", retracted_by="editor")
    incremental = dump(app.settings)
    objects = schema_objects(app.settings)
    monkeypatch.setattr(rebuild, "FETCH_SIZE", 10)
    monkeypatch.setattr(rebuild, "DRAIN_EVENTS", 20)
    monkeypatch.setattr(rebuild.Rebuild, "_may_swap", lambda self, cursor: False)
    assert app.projection.rebuild() == log_size(app)
    assert dump(app.settings) == incremental
    assert schema_objects(app.settings) == objects
