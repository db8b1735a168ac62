"""The bitemporal read model on both stores: rectangles, exactly-once catch-up,
read-your-writes, rebuild, check, and concurrent writers."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from dateline.api.cli import main
from dateline.domain.control import EventType, Source, Status
from dateline.domain.errors import CityNotFound, DomainError
from dateline.infrastructure import recorders
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.read_model.catch_up import CatchUp
from dateline.infrastructure.read_model.queries import CityDegraded
from dateline.infrastructure.settings import Settings
from dateline.seeds.loader import load_seeds
from tests.conftest import POSTGRES_URL, ManualClock

GOV, TALIBAN, NRF = "Afghan government", "Taliban", "National Resistance Front"
TABLE_ORDER = {
    "dateline_control_periods": "city_id, valid_from, known_from",
    "dateline_event_facts": "city_id, version",
    "dateline_rm_cities": "city_id",
    "dateline_projection_tracking": "projection",
}


# ------------------------------------------------------------------ helpers
def sql(settings: Settings, statement: str) -> list[tuple[Any, ...]]:
    """Run SQL on the store directly; `{t}` is the table prefix (schema)."""
    store = settings.store()
    if store.kind == "sqlite":
        with closing(sqlite3.connect(str(store.sqlite_path))) as conn, conn:
            return conn.execute(statement.format(t="")).fetchall()
    with psycopg.connect(POSTGRES_URL) as pg:
        cursor = pg.execute(statement.format(t=f'"{store.schema}".'))  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def dump(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: sql(settings, f"SELECT * FROM {{t}}{table} ORDER BY {order}")
        for table, order in TABLE_ORDER.items()
    }


def log_size(app: Dateline) -> int:
    return int(app.recorder.max_notification_id() or 0)


def register(app: Dateline, slug: str, tracked_since: date = date(2015, 1, 1)) -> None:
    app.register_city(
        slug=slug, name=slug.title(), province="P", country="Afghanistan", lat=36.7, lon=68.8,
        population=1000, initial_controller=GOV, tracked_since=tracked_since,
    )  # fmt: skip


def report(app: Dateline, slug: str, kind: EventType, on: date, actor: str, **kw: Any) -> Any:
    return app.report(
        slug, kind, occurred_on=on, actor=actor, source=Source("Reuters"), reported_by="t", **kw
    )


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[Dateline]:
    application = Dateline(settings, clock=clock, migrate=True)
    yield application
    application.close()


def assert_agrees(app: Dateline, slug: str, days: list[date], instants: list[datetime]) -> None:
    for known_at in instants:
        for as_of in days:
            assert app.read_model.status(slug, as_of, known_at) == app.status(
                slug, as_of, known_at
            ), (slug, as_of, known_at)


# -------------------------------------------------------------- rectangles
def test_a_backdated_report_and_a_retraction_close_rows_and_open_new_ones(
    app: Dateline, clock: ManualClock
) -> None:
    t0 = clock.now
    register(app, "kunduz")
    t1 = clock.advance(days=1)
    report(app, "kunduz", EventType.CAPTURED, date(2015, 9, 28), TALIBAN)
    t2 = clock.advance(days=1)
    report(app, "kunduz", EventType.CONTESTED, date(2015, 9, 20), TALIBAN)  # backdated
    t3 = clock.advance(days=1)
    app.retract("kunduz", "kunduz-3", reason="misdated", retracted_by="editor")

    rows = {
        (p.valid_from, p.valid_to, p.known_from, p.known_to, p.state.status, p.version)
        for p in app.read_model.periods("kunduz")
    }
    jan1, sep20, sep28 = date(2015, 1, 1), date(2015, 9, 20), date(2015, 9, 28)
    held, contested = Status.HELD, Status.CONTESTED
    assert rows == {
        (jan1, None, t0, t1, held, 1),  # registered: the government, open-ended
        (jan1, sep28, t1, t2, held, 2),  # the capture ends it on Sep 28
        (sep28, None, t1, None, held, 2),  # Taliban from Sep 28: never changed since
        (jan1, sep20, t2, t3, held, 3),  # the backdated assault cuts it at Sep 20
        (sep20, sep28, t2, t3, contested, 3),
        (jan1, sep28, t3, None, held, 4),  # retracted: back to the capture alone
    }
    days = [jan1 - timedelta(days=1), jan1, sep20, date(2015, 9, 25), sep28, date(2021, 1, 1)]
    instants = [t0 - timedelta(seconds=1), t0, t1, t2 - timedelta(microseconds=1), t2, t3]
    assert_agrees(app, "kunduz", days, instants)
    assert app.read_model.timeline("kunduz", t2) == app.timeline("kunduz", t2)
    assert app.read_model.history("kunduz", t2) == app.history("kunduz", t2)
    assert app.read_model.history("kunduz") == app.history("kunduz")


def test_unknown_before_tracking_and_before_registration_like_the_fold(
    app: Dateline, clock: ManualClock
) -> None:
    before = clock.now - timedelta(microseconds=1)
    register(app, "herat", tracked_since=date(2016, 1, 1))
    clock.advance(minutes=1)
    report(app, "herat", EventType.CONTESTED, date(2016, 5, 1), TALIBAN)
    early = app.read_model.status("herat", date(2015, 12, 31))
    assert (early.state.status, early.version) == (Status.UNKNOWN, 2)
    unregistered = app.read_model.status("herat", date(2016, 6, 1), before)
    assert (unregistered.state.status, unregistered.version) == (Status.UNKNOWN, 0)
    assert unregistered == app.status("herat", date(2016, 6, 1), before)
    assert early == app.status("herat", date(2015, 12, 31), early.known_at)
    assert app.read_model.history("herat", before) == [] == app.history("herat", before)
    assert app.read_model.timeline("herat", before)[1] == []
    with pytest.raises(CityNotFound):
        app.read_model.status("nowhere")


def test_statuses_and_changes_across_cities(app: Dateline, clock: ManualClock) -> None:
    load_seeds(app)
    seeded = clock.now
    clock.advance(days=30)
    added = report(app, "kunduz", EventType.CONTESTED, date(2015, 9, 27), TALIBAN)  # backdated
    clock.advance(days=30)
    app.retract("kunduz", added.event.id, reason="wrong day", retracted_by="editor")
    now = clock.now
    slugs = app.city_slugs()
    for as_of in (date(2014, 1, 1), date(2015, 9, 28), date(2016, 10, 3), date(2021, 8, 8)):
        for known_at in (seeded - timedelta(days=1), seeded, now):
            expected = [app.status(slug, as_of, known_at) for slug in slugs]
            assert app.read_model.statuses(as_of, known_at) == expected

    start, end = date(2015, 9, 1), date(2015, 12, 31)
    for known_at in (seeded, now):
        expected_changes = sorted(
            (
                e
                for slug in slugs
                for e in app.history(slug, known_at)
                if e.occurred_on is not None and start <= e.occurred_on <= end
            ),
            key=lambda e: (e.occurred_on, e.city, e.version),
        )
        assert app.read_model.changes(start, end, known_at) == expected_changes
    retracted = [e for e in app.read_model.changes(start, end, now) if e.retracted]
    assert [e.id for e in retracted] == [added.event.id]
    assert not [e for e in app.read_model.changes(start, end, seeded) if e.retracted]


def test_sources_of_given_events_by_id(app: Dateline, clock: ManualClock) -> None:
    load_seeds(app)
    clock.advance(days=1)
    added = report(app, "kunduz", EventType.CONTESTED, date(2015, 9, 27), TALIBAN)
    clock.advance(days=1)
    app.retract("kunduz", added.event.id, reason="wrong day", retracted_by="editor")
    logged = [e for slug in app.city_slugs() for e in app.history(slug)]
    with_source = {e.id: e.source for e in logged if e.source is not None}
    without = [e.id for e in logged if e.source is None]  # registrations, the retraction
    assert with_source and without and added.event.id in with_source
    asked = [*with_source, *without, "kunduz-9999", "no-such-city-3", "not an id"]
    assert app.read_model.sources(asked) == with_source
    one = next(iter(with_source))
    assert app.read_model.sources([one]) == {one: with_source[one]}
    assert app.read_model.sources([]) == {}


# ----------------------------------------------- exactly once, read your writes
def test_each_append_is_visible_at_once_with_its_rows_in_its_transaction(
    app: Dateline, settings: Settings, clock: ManualClock
) -> None:
    register(app, "kunduz")
    clock.advance(hours=1)
    report(app, "kunduz", EventType.CAPTURED, date(2015, 9, 28), TALIBAN, report_id="r1")
    assert app.read_model.position() == log_size(app) == 2
    assert app.read_model.progress()[1] == 2
    assert app.read_model.status("kunduz", date(2016, 1, 1)).state.controller == TALIBAN
    assert sql(settings, "SELECT COUNT(*) FROM {t}dateline_event_facts") == [(2,)]
    assert app.projection.catch_up() == 0  # nothing left for a catch-up


def test_events_written_without_their_rows_are_caught_up_once_at_start(
    app: Dateline, settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after an upgrade: events an older version appended without inline
    rows are applied by the next start-up, exactly once."""
    register(app, "kunduz")
    position = app.read_model.position()
    monkeypatch.setattr(recorders, "ROWS_KWARG", "not-a-kwarg")  # an older version
    clock.advance(hours=1)
    report(app, "kunduz", EventType.CAPTURED, date(2015, 9, 28), TALIBAN, report_id="r1")
    clock.advance(hours=1)
    report(app, "kunduz", EventType.CONTESTED, date(2015, 9, 20), TALIBAN)
    monkeypatch.undo()
    assert log_size(app) == 3 and app.read_model.position() == position
    assert app.read_model.status("kunduz", date(2016, 1, 1)).state.controller == GOV  # lagging

    restarted = Dateline(settings, clock=clock)  # catches up on start
    try:
        assert restarted.read_model.position() == log_size(app) == 3
        assert restarted.read_model.status("kunduz", date(2016, 1, 1)).state.controller == TALIBAN
        # Each event exactly once: one fact per event, and nothing left to apply.
        assert sql(settings, "SELECT COUNT(*) FROM {t}dateline_event_facts") == [(3,)]
        assert restarted.projection.catch_up() == 0
        assert restarted.check_read_model()[0] == []
        incremental = dump(settings)
        restarted.projection.rebuild()
        assert dump(settings) == incremental
    finally:
        restarted.close()


def test_a_catch_up_skips_what_was_projected_inline_meanwhile(
    app: Dateline, settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(app, "kunduz")
    register(app, "herat")
    monkeypatch.setattr(recorders, "ROWS_KWARG", "not-a-kwarg")
    clock.advance(hours=1)
    report(app, "kunduz", EventType.CAPTURED, date(2015, 9, 28), TALIBAN)  # a backlog
    monkeypatch.undo()
    clock.advance(hours=1)
    report(app, "herat", EventType.CONTESTED, date(2015, 9, 20), TALIBAN)  # inline
    assert app.read_model.position() == 2  # held back behind the backlog
    assert app.projection.catch_up() == 1
    assert app.read_model.position() == log_size(app) == 4
    assert sql(settings, "SELECT COUNT(*) FROM {t}dateline_event_facts") == [(4,)]
    assert app.check_read_model()[0] == []


def test_a_failure_inside_a_catch_up_batch_rolls_it_back_whole(
    app: Dateline, settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(app, "kunduz")
    monkeypatch.setattr(recorders, "ROWS_KWARG", "not-a-kwarg")
    clock.advance(hours=1)
    report(app, "kunduz", EventType.CAPTURED, date(2015, 9, 28), TALIBAN)
    monkeypatch.undo()
    before = dump(settings)

    def die(self: CatchUp, cursor: Any, failures: Any) -> None:
        raise RuntimeError("killed mid-batch")  # rows written, position not yet

    monkeypatch.setattr(CatchUp, "_mark", die)
    with pytest.raises(RuntimeError, match="killed mid-batch"):
        app.projection.catch_up()
    assert dump(settings) == before  # nothing of the batch survived
    monkeypatch.undo()

    assert app.projection.catch_up() == 1
    incremental = dump(settings)
    assert len(incremental["dateline_event_facts"]) == 2
    app.projection.rebuild()
    assert dump(settings) == incremental


def test_an_event_that_cannot_be_applied_at_start_up_is_contained(
    app: Dateline, settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog event whose rows the read model refuses (here: its fact row
    already taken): the process still starts, the city is degraded with the
    event and the reason, other cities are written and read, and `projections
    check` and `rebuild` run; the rebuild repairs it."""
    register(app, "kunduz")
    register(app, "herat")
    monkeypatch.setattr(recorders, "ROWS_KWARG", "not-a-kwarg")
    clock.advance(hours=1)
    report(app, "kunduz", EventType.CAPTURED, date(2015, 9, 28), TALIBAN)
    monkeypatch.undo()
    kunduz = app.find_city("kunduz")
    assert kunduz is not None
    d = app.read_model.dialect
    with app.projection._write() as cursor:  # damage: the row the event's projection needs
        cursor.execute(
            d.sql("DELETE FROM {periods} WHERE city_id = %s AND known_to IS NULL"),
            (d.uid(kunduz.id),),
        )
        cursor.execute(
            d.sql(
                "INSERT INTO {periods} (city_id, valid_from, known_from, status, version) "
                "VALUES (%s, %s, %s, 'held', 99)"
            ),
            (d.uid(kunduz.id), d.day(date(2015, 9, 28)), d.instant(kunduz.modified_on)),
        )
    restarted = Dateline(settings, clock=clock)  # starts despite the bad event
    try:
        degraded = restarted.read_model.degraded()
        assert [(d.slug, d.event_id) for d in degraded] == [("kunduz", "kunduz-2")]
        assert "dateline_control_periods" in degraded[0].reason
        with pytest.raises(CityDegraded, match="kunduz-2"):
            restarted.read_model.status("kunduz")
        clock.advance(hours=1)
        report(restarted, "herat", EventType.CONTESTED, date(2015, 9, 20), TALIBAN)
        assert restarted.read_model.status("herat", date(2015, 9, 21)).state.contested_by == TALIBAN
        assert [e.id for e in restarted.history("kunduz")][-1] == "kunduz-2"
        differences, _ = restarted.check_read_model(samples=20)
        assert differences  # check runs, and sees what is wrong
        # The command line: status names it (exit 1); history and check still run.
        monkeypatch.setenv("DATELINE_DATABASE_URL", settings.database_url or "")
        monkeypatch.setenv("DATELINE_POSTGRES_SCHEMA", settings.postgres_schema)
        lines: list[str] = []
        assert main(["projections", "status"], out=lines.append) == 1
        assert "kunduz" in lines[-1] and "kunduz-2" in "\n".join(lines)
        assert main(["history", "kunduz"], out=lines.append) == 0
        assert main(["projections", "check", "--samples", "5"], out=lines.append) == 1
        assert main(["projections", "rebuild"], out=lines.append) == 0
        assert main(["projections", "status"], out=lines.append) == 0
        assert "no city degraded" in lines[-1]
        restarted.projection.rebuild()
        assert restarted.read_model.degraded() == []
        assert restarted.check_read_model(samples=20)[0] == []
        assert restarted.read_model.status("kunduz", date(2016, 1, 1)).state.controller == TALIBAN
    finally:
        restarted.close()


def test_rebuild_equals_incremental(app: Dateline, settings: Settings, clock: ManualClock) -> None:
    load_seeds(app)
    assert app.read_model.position() == log_size(app)  # import_cities waited for it
    clock.advance(days=1)
    added = report(app, "kunduz", EventType.CONTESTED, date(2015, 9, 27), TALIBAN)
    clock.advance(days=1)
    app.retract("kunduz", added.event.id, reason="duplicate", retracted_by="editor")
    incremental = dump(settings)
    assert app.projection.rebuild() == log_size(app)
    assert dump(settings) == incremental
    assert app.check_read_model()[0] == []


# ----------------------------------------------------------- rebuild / check


def test_check_reports_a_corrupted_row_and_rebuild_repairs_it(
    cli: Callable[..., tuple[int, str]], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = cli("projections", "check", "--samples", "50")
    assert code == 0, out
    assert out.startswith("0 differences")
    sql(
        settings,
        "UPDATE {t}dateline_control_periods SET controller = 'Nobody' "
        "WHERE known_to IS NULL AND controller = 'Taliban' AND valid_from = '2015-09-28'",
    )
    code, out = cli("projections", "check", "--samples", "50")
    assert code == 1
    assert "kunduz" in out and "controller=Nobody" in out and "status" in out
    assert "differences between the read model and the aggregate fold" in capsys.readouterr().err

    code, out = cli("projections", "rebuild", "--json")
    assert code == 0 and '"events_applied": 89' in out
    assert cli("projections", "check")[0] == 0


def test_check_finds_a_missing_row_and_a_wrong_fact(
    app: Dateline, settings: Settings, clock: ManualClock
) -> None:
    load_seeds(app)
    sql(settings, "DELETE FROM {t}dateline_control_periods WHERE valid_from = '2016-10-03'")
    sql(settings, "UPDATE {t}dateline_event_facts SET actor = 'X' WHERE version = 2")
    differences, compared = app.check_read_model(samples=30)
    assert compared > 0
    assert {d.what for d in differences} >= {"status", "history", "timeline"}
    assert "kunduz" in {d.city for d in differences if d.what == "status"}


# -------------------------------------------------------- concurrent writers
def write_a_lot(app: Dateline, slugs: list[str], seed: int, count: int) -> list[str]:
    """Random reports (some refused by the rules), checking read-your-writes."""
    rng = random.Random(seed)
    failures = []
    for _ in range(count):
        slug = rng.choice(slugs)
        kind = rng.choice(list(EventType))
        on = date(2015, 1, 1) + timedelta(days=rng.randint(0, 900))
        try:
            result = report(app, slug, kind, on, rng.choice((GOV, TALIBAN, NRF)))
        except DomainError:
            continue
        seen = app.read_model.status(slug, on, result.event.recorded_at)
        if seen.version < result.version:
            failures.append(f"{slug}: wrote v{result.version}, read model says v{seen.version}")
    return failures


def test_two_applications_appending_at_once_keep_it_exact(settings: Settings) -> None:
    first = Dateline(settings, migrate=True)
    second = Dateline(settings)
    try:
        for slug in ("shared", "one", "two"):
            register(first, slug)
        failures: list[str] = []

        def worker(app: Dateline, slugs: list[str], seed: int) -> None:
            failures.extend(write_a_lot(app, slugs, seed, 40))

        threads = [
            threading.Thread(target=worker, args=(first, ["shared", "one"], 1)),
            threading.Thread(target=worker, args=(first, ["shared", "two"], 2)),
            threading.Thread(target=worker, args=(second, ["shared", "one"], 3)),
            threading.Thread(target=worker, args=(second, ["shared", "two"], 4)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert first.count_events() > 30  # enough of the random reports were accepted
        assert first.read_model.position() == log_size(first)
        assert second.projection.catch_up() == 0
        facts = sql(settings, "SELECT COUNT(*) FROM {t}dateline_event_facts")
        assert facts == [(first.count_events(),)]  # ids have gaps: failed appends
        assert first.check_read_model(samples=100)[0] == []
        incremental = dump(settings)
        second.projection.rebuild()
        assert dump(settings) == incremental
    finally:
        first.close()
        second.close()


def append_in_another_process(database_url: str, schema: str, seed: int) -> list[str]:
    app = Dateline(Settings(database_url=database_url, postgres_schema=schema))
    try:
        return write_a_lot(app, ["shared", f"own{seed}"], seed, 25)
    finally:
        app.close()


def test_two_processes_appending_at_once_keep_it_exact(settings: Settings) -> None:
    app = Dateline(settings, migrate=True)
    try:
        for slug in ("shared", "own1", "own2"):
            register(app, slug)
        context = multiprocessing.get_context("spawn")
        url, schema = settings.database_url or "", settings.postgres_schema
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            results = list(pool.map(append_in_another_process, [url, url], [schema] * 2, [1, 2]))
        assert results == [[], []]
        assert app.projection.catch_up() == 0  # the other processes left nothing to do
        assert app.read_model.position() == log_size(app)
        facts = sql(settings, "SELECT COUNT(*) FROM {t}dateline_event_facts")
        assert facts == [(app.count_events(),)]
        assert app.check_read_model(samples=100)[0] == []
    finally:
        app.close()


def test_the_read_model_answers_with_the_time_of_the_question(
    app: Dateline, clock: ManualClock
) -> None:
    register(app, "ghazni")
    clock.advance(days=2)
    report(app, "ghazni", EventType.CAPTURED, date(2021, 8, 12), TALIBAN)
    view = app.read_model.status("ghazni")
    assert (view.known_at, view.as_of) == (clock.now, clock.now.date())
    assert view == app.status("ghazni")
    assert app.read_model.statuses() == [app.status("ghazni")]
    assert datetime(2021, 8, 1, tzinfo=UTC) < clock.now
