"""A bare date for known_at means the end of that day, UTC, on HTTP and on the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from dateline.api import cli, instants, schemas
from tests.api.conftest import Api
from tests.conftest import CliRunner, ManualClock


def test_one_rule_for_both_front_ends() -> None:
    end = datetime(2021, 8, 8, 23, 59, 59, 999999, tzinfo=UTC)
    assert instants.parse_instant("2021-08-08") == end
    assert schemas.parse_instant("2021-08-08") == end
    assert cli.parse_instant("2021-08-08") == end
    assert instants.parse_instant("2021-08-08T13:30:00 04:30") == datetime(
        2021, 8, 8, 9, 0, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="not a calendar date"):
        instants.parse_instant("2021-02-30")


def test_http_bare_date_is_the_end_of_that_day(make_api: Callable[..., Api]) -> None:
    clock = ManualClock(datetime(2021, 8, 1, 9, 0, tzinfo=UTC))
    api = make_api(clock)
    api.register()
    clock.advance(days=7)  # the capture is recorded on 2021-08-08 at 09:00Z
    assert api.report("testville", "Captured", "2021-08-08", "Taliban").status_code == 201

    def controller(known_at: str) -> str:
        params = {"as_of": "2021-08-08", "known_at": known_at}
        response = api.get("/cities/testville/status", params=params)
        assert response.status_code == 200, response.text
        return str(response.json()["controller"])

    assert controller("2021-08-07") == "Afghan government"
    assert controller("2021-08-08") == "Taliban"
    assert controller("2021-08-08") == controller("2021-08-08T23:59:59.999999Z")
    timeline = api.get("/cities/testville/timeline", params={"known_at": "2021-08-07"})
    assert timeline.headers["etag"] == '"1"'


def test_cli_bare_date_is_the_end_of_that_day(cli: CliRunner) -> None:
    code, out = cli("history", "kunduz", "--json")
    assert code == 0
    seeded_on = date.fromisoformat(json.loads(out)[-1]["recorded_at"][:10])

    def status(known_at: date) -> str:
        code, out = cli("status", "kunduz", "--as-of", "2015-09-28", "--known-at", str(known_at))
        assert code == 0, out
        return out

    assert status(seeded_on).endswith("held by Taliban since 2015-09-28 (event kunduz-3)")
    assert status(seeded_on - timedelta(days=1)).endswith(
        "unknown (before the record begins or was known)"
    )
