"""`dateline import`: an archive in the seed format, decided in memory, written in bulk.

On both stores: a refused row writes nothing and is named by its line; a valid
file gives exactly what reporting its rows one by one gives; importing again
writes nothing; the hash-linked log verifies and the read model matches the
fold afterwards; and, as a property, any valid log imported in bulk equals the
same log appended one by one.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dateline.domain.control import EventType, Source
from dateline.domain.errors import DomainError
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.audit.service import verify_store
from dateline.infrastructure.importer import (
    ImportInterrupted,
    run_import,
    seed_report_id,
    source_name,
)
from dateline.infrastructure.settings import Settings
from dateline.seeds.loader import SEEDS_DIR
from tests.conftest import CliRunner, ManualClock

CITY_HEADER = [
    "slug", "name", "province", "lat", "lon", "population", "initial_controller", "tracked_since",
]  # fmt: skip
EVENT_HEADER = ["city", "event_type", "occurred_on", "actor", "source_url", "note", "report_id"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def seed_files(folder: Path, extra: list[tuple[int, dict[str, str]]] = ()) -> tuple[Path, Path]:  # type: ignore[assignment]
    """The seeds' two files, with `extra` rows inserted before the given row indexes."""
    events = read_csv(SEEDS_DIR / "control_events.csv")
    for index, row in sorted(extra, key=lambda x: -x[0]):
        events.insert(index, row)
    header = list(read_csv(SEEDS_DIR / "control_events.csv")[0].keys())
    return (
        write_csv(folder / "control_events.csv", header, events),
        write_csv(
            folder / "cities.csv",
            list(read_csv(SEEDS_DIR / "cities.csv")[0]),
            read_csv(SEEDS_DIR / "cities.csv"),
        ),
    )


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[Dateline]:
    application = Dateline(settings, clock=clock, migrate=True)
    yield application
    application.close()


def log_size(app: Dateline) -> int:
    return app.recorder.max_notification_id() or 0


def audit_size(app: Dateline) -> int:
    return verify_store(app.store).events


# ------------------------------------------------------------------ refusals
def test_one_bad_row_writes_nothing_and_names_its_line(app: Dateline, tmp_path: Path) -> None:
    # Kunduz is held by the government on 2015-10-02 (retaken on 10-01): a second
    # Retaken has nothing to retake. Inserted as the 6th row: line 7 of the file.
    bad = {
        "city": "Kunduz", "province": "Kunduz", "event_type": "Retaken",
        "occurred_on": "2015-10-02", "actor": "Afghan government",
        "previous_controller": "Taliban", "source_url": "https://example.org/a", "note": "",
    }  # fmt: skip
    events, cities = seed_files(tmp_path, [(5, bad)])
    result = run_import(app, events, cities)
    assert len(result.refusals) == 1
    refusal = result.refusals[0]
    assert (refusal.file, refusal.line) == ("control_events.csv", 7)
    assert refusal.field.startswith("rule ")
    # The conflict: the event that made the state on that day, recorded by line 4.
    assert refusal.conflicting_event == "kunduz-4"
    assert refusal.conflicting_line == 4
    assert "line 7" in refusal.describe() and "kunduz-4" in refusal.describe()
    assert log_size(app) == 0
    assert app.city_slugs() == []
    assert app.count_events() == 0
    assert audit_size(app) == 0


def test_a_refused_row_in_an_archive_for_existing_cities_writes_nothing(
    app: Dateline, tmp_path: Path
) -> None:
    events, cities = seed_files(tmp_path)
    run_import(app, events, cities)
    before = (log_size(app), app.count_events(), audit_size(app))
    more = [
        {"city": "kunduz", "event_type": "Contested", "occurred_on": "2022-01-10",
         "actor": "ISKP", "source_url": "https://example.org/1", "report_id": "a-1"},
        {"city": "kunduz", "event_type": "Captured", "occurred_on": "2099-01-01",
         "actor": "ISKP", "source_url": "https://example.org/2", "report_id": "a-2"},
        {"city": "atlantis", "event_type": "Captured", "occurred_on": "2022-01-01",
         "actor": "ISKP", "source_url": "https://example.org/3", "report_id": "a-3"},
    ]  # fmt: skip
    archive = write_csv(tmp_path / "more.csv", EVENT_HEADER, more)
    result = run_import(app, archive)
    assert [(r.line, r.field) for r in result.refusals] == [(3, "occurred_on"), (4, "city")]
    assert (log_size(app), app.count_events(), audit_size(app)) == before


# --------------------------------------------------- equal to one by one
def report_one_by_one(app: Dateline, events: Path, cities: Path) -> None:
    """What the import does, through the ordinary write path, row by row."""
    slugs = {}
    for row in read_csv(cities):
        app.register_city(
            slug=row["slug"], name=row["name"], province=row["province"],
            country="Afghanistan", lat=float(row["lat"]), lon=float(row["lon"]),
            population=int(row["population"]) if row["population"] else None,
            initial_controller=row["initial_controller"],
            tracked_since=date.fromisoformat(row["tracked_since"]),
        )  # fmt: skip
        slugs[row["name"]] = row["slug"]
    for row in read_csv(events):
        slug = slugs.get(row["city"], row["city"])
        app.report(
            slug,
            EventType(row["event_type"]),
            occurred_on=date.fromisoformat(row["occurred_on"]),
            actor=row["actor"],
            source=Source(source_name(row["source_url"]), row["source_url"]),
            note=row["note"] or None,
            report_id=row.get("report_id")
            or seed_report_id(slug, row["occurred_on"], row["event_type"]),
            reported_by="import",
        )


def sampled_days(app: Dateline, slug: str) -> list[date]:
    days = {date(2014, 12, 31), date(2026, 1, 1)}
    for e in app.history(slug):
        if e.occurred_on is not None:
            days |= {e.occurred_on - timedelta(days=1), e.occurred_on, e.occurred_on + timedelta(1)}
    return sorted(days)


def test_a_valid_file_equals_its_rows_reported_one_by_one(
    make_settings: Callable[..., Settings], store_kind: str, tmp_path: Path
) -> None:
    clock = ManualClock()  # frozen: record times are each city's, the same in both
    bulk = Dateline(make_settings(store_kind, snapshot_interval=4), clock=clock, migrate=True)
    single = Dateline(make_settings(store_kind, snapshot_interval=4), clock=clock, migrate=True)
    try:
        events, cities = seed_files(tmp_path)
        result = run_import(bulk, events, cities, batch_events=20)  # several transactions
        assert result.transactions > 1
        report_one_by_one(single, events, cities)
        assert bulk.city_slugs() == single.city_slugs()
        assert log_size(bulk) == log_size(single) == result.events_written
        for slug in bulk.city_slugs():
            assert bulk.history(slug) == single.history(slug)
            assert bulk.read_model.history(slug) == single.read_model.history(slug)
            assert bulk.read_model.periods(slug) == single.read_model.periods(slug)
            for day in sampled_days(bulk, slug):
                expected = single.status(slug, day)
                assert bulk.status(slug, day) == expected
                assert bulk.read_model.status(slug, day) == single.read_model.status(slug, day)
        assert bulk.read_model.position() == log_size(bulk)
        assert bulk.count_events() == single.count_events()
        assert verify_store(bulk.store).intact
        assert bulk.check_read_model(samples=20)[0] == []
    finally:
        bulk.close()
        single.close()


def test_reimporting_writes_nothing(app: Dateline, tmp_path: Path) -> None:
    events, cities = seed_files(tmp_path)
    first = run_import(app, events, cities)
    rows = len(read_csv(events))
    assert first.events_written == rows + len(read_csv(cities))
    size, counted, audited = log_size(app), app.count_events(), audit_size(app)
    again = run_import(app, events, cities)
    assert (again.cities_registered, again.events_written) == (0, 0)
    assert again.events_already_present == rows
    assert again.transactions == 0
    assert (log_size(app), app.count_events(), audit_size(app)) == (size, counted, audited)


def test_import_extends_cities_written_by_appends(app: Dateline, tmp_path: Path) -> None:
    """Cities already in the store are loaded and extended; the log, the index, the
    hash chain and the read model stay as one-by-one appends would leave them."""
    events, cities = seed_files(tmp_path)
    early = read_csv(events)[:10]
    report_one_by_one(app, write_csv(tmp_path / "early.csv", EVENT_HEADER, early), cities)
    size = log_size(app)
    result = run_import(app, events, cities, batch_events=15)
    assert result.events_already_present == 10
    assert result.cities_registered == 0
    assert log_size(app) == size + len(read_csv(events)) - 10
    assert verify_store(app.store).intact
    assert app.read_model.position() == log_size(app)
    assert app.check_read_model(samples=30)[0] == []
    assert app.status("kunduz", date(2021, 8, 8)).state.controller == "Taliban"


# ---------------------------------------------------------------- the command
@pytest.fixture
def fresh_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The command line on a migrated, empty store."""
    from dateline.api.cli import main

    monkeypatch.setenv("DATELINE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("DATELINE_POSTGRES_SCHEMA", settings.postgres_schema)

    def run(*argv: str) -> tuple[int, str]:
        lines: list[str] = []
        code = main(list(argv), out=lines.append)
        return code, "\n".join(lines)

    assert run("migrate")[0] == 0
    return run


def test_cli_import_then_audit_and_projections_are_clean(
    fresh_cli: CliRunner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, _ = seed_files(tmp_path)  # cities.csv beside it is found
    code, out = fresh_cli("import", str(events), "--dry-run")
    assert code == 0 and "nothing written (--dry-run)" in out
    assert fresh_cli("cities", "--json")[1] == "[]"
    code, out = fresh_cli("import", str(events))
    assert code == 0
    assert out.startswith("imported: 32 cities registered, 89 events written, 0 reports")
    code, out = fresh_cli("import", str(events), "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["events_written"], data["events_already_present"]) == (0, 57)
    assert fresh_cli("audit", "verify")[0] == 0
    code, out = fresh_cli("projections", "check")
    assert code == 0 and out.startswith("0 differences")
    assert "importing" not in capsys.readouterr().err  # no bar: stderr is not a terminal


def test_cli_refused_rows_exit_1_naming_each_line(
    fresh_cli: CliRunner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"city": "Kunduz", "event_type": "Seized", "occurred_on": "2015-10-02",
           "actor": "Taliban", "source_url": "https://example.org/x"}  # fmt: skip
    events, _ = seed_files(tmp_path, [(2, bad)])
    code, _ = fresh_cli("import", str(events))
    err = capsys.readouterr().err
    assert code == 1
    assert "control_events.csv line 4: event_type: 'Seized' is not an event type" in err
    assert "1 row(s) refused; nothing written" in err
    assert fresh_cli("cities", "--json")[1] == "[]"
    code, out = fresh_cli("import", str(events), "--json")
    assert code == 1
    assert [r["line"] for r in json.loads(out)["refused"]] == [4]


def test_cli_usage_errors_exit_2(
    fresh_cli: CliRunner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fresh_cli("import", str(tmp_path / "missing.csv"))[0] == 2
    no_actor = write_csv(tmp_path / "e.csv", ["city", "event_type", "occurred_on"], [])
    assert fresh_cli("import", str(no_actor))[0] == 2
    assert "has no column actor, source_url" in capsys.readouterr().err


# ------------------------------------------------------------- the property
ACTORS = ("Afghan government", "Taliban", "NRF")
START = date(2015, 1, 1)
examples = itertools.count()
Row = tuple[int, EventType, int, str]  # city, type, day offset, actor
rows_strategy = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 1, 2]),
        st.sampled_from(list(EventType)),
        st.integers(-3, 400),
        st.sampled_from(ACTORS),
    ),
    min_size=5,
    max_size=40,
)


def test_bulk_import_equals_appending_one_by_one(
    make_settings: Callable[..., Settings], store_kind: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    bulk = Dateline(make_settings(store_kind, snapshot_interval=3), clock=clock, migrate=True)
    single = Dateline(make_settings(store_kind, snapshot_interval=3), clock=clock, migrate=True)

    @hypothesis_settings(
        max_examples=12 if store_kind == "sqlite" else 6,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(rows=rows_strategy, batch=st.integers(1, 30))
    def check(rows: list[Row], batch: int) -> None:
        prefix = f"p{next(examples)}"
        slugs = [f"{prefix}-{i}" for i in range(3)]
        city_rows = [
            {"slug": s, "name": s, "province": "P", "lat": "1", "lon": "2", "population": "",
             "initial_controller": ACTORS[i % 2], "tracked_since": str(START + timedelta(i * 30))}
            for i, s in enumerate(slugs)
        ]  # fmt: skip
        for c in city_rows:
            single.register_city(
                slug=c["slug"], name=c["name"], province="P", country="Afghanistan", lat=1,
                lon=2, population=None, initial_controller=c["initial_controller"],
                tracked_since=date.fromisoformat(c["tracked_since"]),
            )  # fmt: skip
        accepted = []
        for n, (index, kind, offset, actor) in enumerate(rows):
            row = {"city": slugs[index], "event_type": kind.value,
                   "occurred_on": str(START + timedelta(offset)), "actor": actor,
                   "source_url": f"https://example.org/{n}", "note": "",
                   "report_id": f"{prefix}-{n}"}  # fmt: skip
            try:  # the ordinary write path decides which rows are valid
                single.report(
                    row["city"], kind, occurred_on=START + timedelta(offset), actor=actor,
                    source=Source("example.org", row["source_url"]), reported_by="import",
                    report_id=row["report_id"],
                )  # fmt: skip
            except DomainError:
                continue
            accepted.append(row)
        folder = tmp_path / prefix
        folder.mkdir()
        events = write_csv(folder / "events.csv", EVENT_HEADER, accepted)
        cities = write_csv(folder / "cities.csv", CITY_HEADER, city_rows)
        result = run_import(bulk, events, cities, batch_events=batch)
        assert result.refusals == []
        assert result.events_written == len(accepted) + len(slugs)
        for slug in slugs:
            assert bulk.history(slug) == single.history(slug)
            assert bulk.read_model.periods(slug) == single.read_model.periods(slug)
            for day in sampled_days(single, slug):
                assert bulk.read_model.status(slug, day) == single.read_model.status(slug, day)
                assert bulk.status(slug, day) == single.status(slug, day)
        assert bulk.read_model.position() == log_size(bulk)
        assert bulk.count_events() == log_size(bulk)

    try:
        check()
        assert verify_store(bulk.store).intact
        assert bulk.check_read_model(samples=10)[0] == []
    finally:
        bulk.close()
        single.close()


def test_a_batch_that_fails_leaves_earlier_ones_and_a_rerun_completes(
    app: Dateline, tmp_path: Path
) -> None:
    """A live writer registers a city the import is about to write: that batch
    fails as a whole, the ones before it stay, and running the import again
    completes it on top of the other writer's city."""
    events, cities = seed_files(tmp_path)
    last = read_csv(cities)[-1]
    done: list[int] = []

    def meanwhile(count: int, total: int | None) -> None:
        done.append(count)
        if sum(done) and len(done) == 2:  # the first batch is committed
            app.register_city(
                slug=last["slug"], name=last["name"], province=last["province"],
                country="Afghanistan", lat=float(last["lat"]), lon=float(last["lon"]),
                population=None, initial_controller=last["initial_controller"],
                tracked_since=date.fromisoformat(last["tracked_since"]),
            )  # fmt: skip

    with pytest.raises(ImportInterrupted, match="run the import again"):
        run_import(app, events, cities, batch_events=30, progress=meanwhile)
    written = log_size(app)
    assert 1 < written < 89
    assert verify_store(app.store).intact
    again = run_import(app, events, cities)
    assert again.refusals == []
    assert again.events_already_present > 0
    assert verify_store(app.store).intact
    assert app.read_model.position() == log_size(app)
    assert app.check_read_model(samples=10)[0] == []
    assert sorted(app.city_slugs()) == sorted(r["slug"] for r in read_csv(cities))
