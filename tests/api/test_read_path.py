"""Every read, HTTP and command line, comes from the read model: none replays an
aggregate (counted at the repository and the event store), so read latency does
not depend on how long a city's history is."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dateline.api.cli import main
from dateline.infrastructure.settings import Settings
from tests.api.conftest import Api


@pytest.fixture
def replays(seeded: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every aggregate load and event-store read the app makes, by name."""
    app = seeded.dateline
    made: list[str] = []

    def counting(owner: Any, label: str) -> None:
        original: Callable[..., Any] = owner.get

        def counted(*args: Any, **kwargs: Any) -> Any:
            made.append(label)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, "get", counted)

    counting(app.repository, "repository.get")
    counting(app.events, "events.get")
    yield made


READS = [
    "/cities",
    "/cities/kunduz",
    "/cities/kunduz/status?as_of=2015-09-28",
    "/cities/kunduz/status?as_of=2015-09-28&known_at=2100-01-01T00:00:00Z",
    "/cities/kunduz/timeline",
    "/cities/kunduz/timeline?known_at=2100-01-01T00:00:00Z",
    "/cities/kunduz/events",
    "/cities/kunduz/events/kunduz-3",
    "/status?as_of=2021-08-08",
    "/status?as_of=2021-08-08&format=geojson",
    "/changes?from=2021-08-01&to=2021-08-31",
    "/status.csv?as_of=2021-08-08",
]


def test_http_reads_replay_no_aggregate(seeded: Api, replays: list[str]) -> None:
    for path in READS:
        response = seeded.get(path)
        assert response.status_code == 200, (path, response.text)
    assert replays == []


def test_a_refused_report_names_its_conflict_without_a_replay_of_the_read(
    seeded: Api, replays: list[str]
) -> None:
    """A 409 names the event behind the state it collides with, from the read model
    (the decision itself is the writer's, on its cached city)."""
    response = seeded.report("kunduz", "Captured", "2021-08-09", "Taliban")
    assert response.status_code == 409 and response.json()["conflicting_event"] == "kunduz-10"
    # At most the writer's one load of the city it decides on (then cached): the
    # repository, and the event store it reads.
    assert replays in ([], ["repository.get", "events.get"])


def test_command_line_reads_replay_no_aggregate(
    seeded: Api, replays: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: Settings = seeded.dateline.settings
    monkeypatch.setenv("DATELINE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("DATELINE_POSTGRES_SCHEMA", settings.postgres_schema)
    from dateline.infrastructure.application import Dateline

    opened: list[Dateline] = []
    real_init = Dateline.__init__

    def spy(self: Dateline, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        opened.append(self)
        for name, owner in (("get", self.repository), ("get", self.events)):
            original = getattr(owner, name)

            def counted(*a: Any, _original: Any = original, **k: Any) -> Any:
                replays.append("cli")
                return _original(*a, **k)

            setattr(owner, name, counted)

    monkeypatch.setattr(Dateline, "__init__", spy)
    for argv in (
        ["cities"],
        ["status", "kunduz", "--as-of", "2015-09-28"],
        ["history", "kunduz"],
        ["timeline", "kunduz", "--known-at", "2100-01-01"],
    ):
        assert main([*argv, "--json"], out=lambda _: None) == 0, argv
    assert opened and replays == []
