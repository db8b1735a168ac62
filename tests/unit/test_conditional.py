"""The pure rules behind the HTTP caching headers and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from dateline.api.conditional import matches, never_changes
from dateline.api.exports import to_csv

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "etag", "expected"),
    [
        ('"10"', '"10"', True),
        ('W/"abc"', 'W/"abc"', True),
        ('"abc"', 'W/"abc"', True),  # If-None-Match compares weakly
        ('"9", "10"', '"10"', True),
        ("*", '"10"', True),
        ('"9"', '"10"', False),
        ("", '"10"', False),
    ],
)
def test_if_none_match(header: str, etag: str, expected: bool) -> None:
    assert matches(header, etag) is expected


@pytest.mark.parametrize(
    ("query", "fixed"),
    [
        ({"as_of": "2015-09-29", "known_at": "2025-01-01T00:00:00Z"}, True),
        ({"known_at": "2025-01-01T00:00:00Z"}, True),  # a timeline as known then
        ({"from": "2021-08-06", "to": "2021-08-15", "known_at": "2025-01-01T00:00:00Z"}, True),
        ({"as_of": "2015-09-29"}, False),  # known_at defaults to now: more may come
        ({"as_of": "2026-01-01", "known_at": "2025-01-01T00:00:00Z"}, False),  # today
        ({"as_of": "2015-09-29", "known_at": "2026-01-01T13:00:00Z"}, False),  # future
        ({"as_of": "2015-9-29", "known_at": "2025-01-01T00:00:00Z"}, False),  # malformed
        ({"known_at": "yesterday"}, False),
    ],
)
def test_never_changes(query: dict[str, str], fixed: bool) -> None:
    assert never_changes(query, NOW) is fixed


def test_csv_is_rfc_4180() -> None:
    rows = [{"a": 'say "hi", then\nleave', "b": None}, {"a": "Mazār", "b": 1.5}]
    text = to_csv(("a", "b"), rows)
    assert text == 'a,b\r\n"say ""hi"", then\nleave",\r\nMazār,1.5\r\n'
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["a", "b"],
        ['say "hi", then\nleave', ""],
        ["Mazār", "1.5"],
    ]
