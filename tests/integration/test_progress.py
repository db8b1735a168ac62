"""Progress on the long commands (seed, projections rebuild and check), both stores.

The work reports through a callback whose counts add up to what it did; the
command line draws a bar from it on stderr only when stderr is a terminal and
the output is not `--json`, and ends with a summary giving counts and a rate.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator

import pytest

from dateline.api.cli import progress as cli_progress
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.read_model import rebuild
from dateline.infrastructure.read_model.check import check
from dateline.infrastructure.settings import Settings
from dateline.seeds.loader import SEEDS_DIR, load_seeds

Cli = Callable[..., tuple[int, str]]
Calls = list[tuple[int, int | None]]


def seed_cities() -> int:
    with open(SEEDS_DIR / "cities.csv", newline="", encoding="utf-8") as f:
        return len(list(csv.DictReader(f)))


def recorder(calls: Calls) -> Callable[[int, int | None], None]:
    def record(done: int, total: int | None) -> None:
        calls.append((done, total))

    return record


@pytest.fixture
def app(settings: Settings) -> Iterator[Dateline]:
    application = Dateline(settings, migrate=True)
    yield application
    application.close()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stderr counts as a terminal (pytest's captured stderr is not one)."""
    monkeypatch.setattr(cli_progress, "stderr_is_terminal", lambda: True)


# ------------------------------------------------------- the work's callback
def test_seed_reports_every_city_it_saves(app: Dateline) -> None:
    cities = seed_cities()
    calls: Calls = []
    result = load_seeds(app, progress=recorder(calls))
    assert result.cities_registered == cities
    assert calls[0] == (0, cities)  # the total, announced before any is saved
    assert sum(done for done, _ in calls) == cities
    assert {total for _, total in calls} == {cities}

    again: Calls = []
    assert load_seeds(app, progress=recorder(again)).events_written == 0
    assert sum(done for done, _ in again) == cities


def test_rebuild_reports_the_events_it_applies_batch_by_batch(
    app: Dateline, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_seeds(app)
    head = app.recorder.max_notification_id()
    monkeypatch.setattr(rebuild, "FETCH_SIZE", 20)  # several batches from the seeds
    calls: Calls = []
    applied = app.projection.rebuild(recorder(calls))
    assert applied == app.count_events() > 20
    assert sum(done for done, _ in calls) == applied
    assert len(calls) > 1 + applied // 20  # the announcement, then each batch
    assert {total for _, total in calls} == {head}


def test_check_reports_each_city_it_compares(app: Dateline) -> None:
    load_seeds(app)
    calls: Calls = []
    differences, _ = check(app, app.read_model, samples=5, progress=recorder(calls))
    assert differences == []
    cities = len(app.city_slugs())
    assert calls == [(0, cities)] + [(1, cities)] * cities


def test_no_callback_is_the_default(app: Dateline) -> None:
    assert load_seeds(app).cities_registered == seed_cities()
    assert app.projection.rebuild() == app.count_events()


# ------------------------------------------------------------ the command line
SUMMARIES = {
    ("seed",): r"^seeded: 0 cities registered, 0 events written, \d+ reports already present "
    r"\(\d+\.\d\d s, 0 events/s\)$",
    ("import", str(SEEDS_DIR / "control_events.csv")): r"^imported: 0 cities registered, "
    r"0 events written, \d+ reports already present \(\d+\.\d\d s, 0 events/s\)$",
    ("projections", "rebuild"): r"^rebuilt the read model from \d+ events \(log position \d+\) "
    r"in \d+\.\d\d s, [\d,]+ events/s$",
    ("projections", "check", "--samples", "5"): r"^0 differences between the read model and the "
    r"aggregate fold \(\d+ cities, \d+ \(as_of, known_at\) pairs, \d+\.\d\d s, [\d,]+ cities/s\)$",
}


@pytest.mark.parametrize("argv", list(SUMMARIES))
def test_without_a_terminal_no_bar_only_the_summary(
    cli: Cli, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code, out = cli(*argv)
    assert code == 0, out
    assert re.match(SUMMARIES[argv], out), out
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("argv", "bar"),
    [
        (("seed",), r"seeding .*\b(\d+)/\1 cities"),
        (("import", str(SEEDS_DIR / "control_events.csv")), r"importing .*\b(\d+)/\1 cities"),
        (("projections", "rebuild"), r"rebuilding .*\b\d+/\d+ events"),
        (("projections", "check", "--samples", "5"), r"checking .*\b(\d+)/\1 cities"),
    ],
)
def test_at_a_terminal_a_bar_on_stderr_then_the_summary(
    cli: Cli, argv: tuple[str, ...], bar: str, terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code, out = cli(*argv)
    assert code == 0, out
    assert re.match(SUMMARIES[argv], out), out  # the summary, on stdout alone
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().err)  # colours, cursor
    assert re.search(bar, drawn), drawn


@pytest.mark.parametrize("argv", list(SUMMARIES))
def test_json_at_a_terminal_is_the_json_alone(
    cli: Cli, argv: tuple[str, ...], terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code, out = cli(*argv, "--json")
    assert code == 0, out
    assert isinstance(json.loads(out), dict)
    assert capsys.readouterr() == ("", "")
