"""HTTP conventions: CORS, gzip, ETag and 304, Cache-Control, Vary, HEAD, pagination,
offline docs, and the page's own files. On SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import itertools
import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest

from dateline.api.pagination import MAX_PAGE_SIZE
from dateline.api.routers.cities import TIMELINE_PAGE_SIZE
from dateline.infrastructure.settings import Settings
from tests.api.conftest import Api, TestClient

PAST = {"as_of": "2015-09-29", "known_at": "2024-01-01T00:00:00Z"}
READS = [
    "/",
    "/cities",
    "/cities/kunduz",
    "/cities/kunduz/status",
    "/cities/kunduz/timeline",
    "/cities/kunduz/events",
    "/cities/kunduz/events/kunduz-3",
    "/status?format=geojson",
    "/status.csv",
    "/changes?from=2021-08-06",
    "/changes.csv?from=2021-08-06",
    "/health",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/page/app.js",
]


def next_link(response: Any) -> str | None:
    found = re.match(r'<([^>]+)>;\s*rel="next"', response.headers.get("link", ""))
    return found.group(1) if found else None


# ------------------------------------------------------------------------ CORS
def test_any_origin_may_read(seeded: Api) -> None:
    origin = {"Origin": "https://graphics.example.org"}
    response = seeded.get("/status", headers=origin)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "ETag" in response.headers["access-control-expose-headers"]
    preflight = seeded.client.options(
        "/status",
        headers={**origin, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "GET" in preflight.headers["access-control-allow-methods"]


def test_by_default_no_other_origin_may_write(seeded: Api) -> None:
    preflight = seeded.client.options(
        "/cities/kunduz/events",
        headers={
            "Origin": "https://graphics.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


@pytest.fixture
def cors_api(make_settings: Callable[..., Settings]) -> Iterator[Api]:
    settings = make_settings("sqlite").model_copy(
        update={"cors_origins": "https://newsroom.example.org"}
    )
    from dateline.api.app import create_app

    app = create_app(settings, migrate=True)
    with TestClient(app) as client:
        yield Api(client, "sqlite")


def test_configured_origins_may_write_and_others_may_not_read(cors_api: Api) -> None:
    newsroom = "https://newsroom.example.org"
    preflight = cors_api.client.options(
        "/cities/kunduz/events",
        headers={
            "Origin": newsroom,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == newsroom
    assert "POST" in preflight.headers["access-control-allow-methods"]
    other = cors_api.get("/cities", headers={"Origin": "https://elsewhere.example.org"})
    assert "access-control-allow-origin" not in other.headers
    own = cors_api.get("/cities", headers={"Origin": newsroom})
    assert own.headers["access-control-allow-origin"] == newsroom


def test_cors_origins_setting_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATELINE_CORS_ORIGINS", "*, https://a.example.org/")
    settings = Settings()
    assert settings.cors_read_origins() == ["*"]
    assert settings.cors_write_origins() == ["https://a.example.org"]


# ------------------------------------------------------------------------ gzip
def test_gzip_above_a_small_size(seeded: Api) -> None:
    big = seeded.client.get("/status", params=PAST, headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in big.headers["vary"]
    raw = seeded.client.get("/status", params=PAST, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert big.json() == raw.json()
    small = seeded.client.get("/cities/kunduz/status", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_gzip_bytes_on_the_wire(seeded: Api) -> None:
    with seeded.client.stream("GET", "/status", headers={"Accept-Encoding": "gzip"}) as r:
        wire = b"".join(r.iter_raw())
    assert len(wire) < len(gzip.decompress(wire)) / 3


# --------------------------------------------------------- ETag, 304, caching
@pytest.mark.parametrize("path", READS)
def test_every_read_has_an_etag_and_answers_304(seeded: Api, path: str) -> None:
    first = seeded.get(path, headers={"Accept": "application/json"})
    assert first.status_code == 200, first.text
    tag = first.headers["etag"]
    again = seeded.get(path, headers={"If-None-Match": tag, "Accept": "application/json"})
    if path == "/health":  # the count of events is live: no-store, but still a validator
        assert again.headers["cache-control"] == "no-store"
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    other = seeded.get(path, headers={"If-None-Match": 'W/"other"', "Accept": "application/json"})
    assert other.status_code == 200


@pytest.mark.parametrize("path", ["/status", "/cities", "/changes.csv?from=2015-01-01"])
def test_the_etag_of_now_changes_when_the_record_does(api: Api, path: str) -> None:
    api.register("testville")
    first = api.get(path)
    unchanged = api.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == first.headers["etag"]
    assert unchanged.headers["cache-control"] == first.headers["cache-control"]
    assert api.report("testville", "Captured", "2020-01-01", "Taliban").status_code == 201
    after = api.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert after.status_code == 200
    assert "Taliban" in after.text


def test_past_answers_are_immutable_and_now_is_short(seeded: Api) -> None:
    for path in ("/status", "/cities/kunduz/status", "/status.csv"):
        fixed = seeded.get(path, params=PAST)
        assert fixed.headers["cache-control"] == "public, max-age=31536000, immutable", path
    changes = seeded.get("/changes", params={"from": "2015-01-01", "to": "2016-01-01", **PAST})
    assert "immutable" in changes.headers["cache-control"]
    for params in (
        {},
        {"as_of": "2015-09-29"},
        {"known_at": PAST["known_at"], "as_of": "2999-01-01"},
    ):
        live = seeded.get("/status", params=params)
        assert live.headers["cache-control"].startswith("public, max-age="), params
        assert "immutable" not in live.headers["cache-control"]


def test_private_cache_when_reads_need_a_token(make_api: Callable[..., Api]) -> None:
    api = make_api(public_reads=False)
    response = api.get("/cities", headers=api.as_("reader"))
    assert response.headers["cache-control"].startswith("private, ")


def test_vary_accept_where_the_body_depends_on_it(seeded: Api) -> None:
    assert "Accept" in seeded.get("/status").headers["vary"]
    geo = seeded.get("/status", headers={"Accept": "application/geo+json"})
    assert geo.headers["content-type"].startswith("application/geo+json")
    assert "Accept" in geo.headers["vary"]
    city = seeded.get("/cities/kunduz", headers={"Accept": "application/json"})
    assert "Accept" in city.headers["vary"]


def test_a_browser_asking_for_a_city_gets_the_page(seeded: Api) -> None:
    answer = seeded.client.get(
        "/cities/kunduz", headers={"Accept": "text/html,*/*;q=0.8"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/?city=kunduz"
    assert seeded.get("/cities/nowhere", headers={"Accept": "text/html"}).status_code == 404


# ------------------------------------------------------------------------ HEAD
@pytest.mark.parametrize("path", READS)
def test_head_on_every_get(seeded: Api, path: str) -> None:
    get = seeded.get(path)
    head = seeded.client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/health":
        assert head.headers["etag"] == get.headers["etag"]
    assert seeded.client.head("/cities/nowhere").status_code == 404


# ------------------------------------------------------------------ pagination
def walk(
    api: Api,
    url: str,
    params: dict[str, Any] | None = None,
    between_pages: Callable[[int], None] | None = None,
) -> tuple[list[Any], list[str]]:
    """Every page's rows, and the next links followed; `between_pages(n)` runs after
    page n (to append while the walk goes on)."""
    rows: list[Any] = []
    links: list[str] = []
    response = api.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        rows.extend(response.json())
        if between_pages:
            between_pages(len(links))
        link = next_link(response)
        if link is None:
            return rows, links
        links.append(link)
        response = api.get(link)


def test_cities_pages(seeded: Api) -> None:
    everything = [c["slug"] for c in seeded.get("/cities").json()]
    rows, links = walk(seeded, "/cities", {"limit": 5})
    assert [c["slug"] for c in rows] == everything
    assert len(links) + 1 == -(-len(everything) // 5)


@pytest.mark.parametrize("limit", [0, MAX_PAGE_SIZE + 1])
def test_limit_out_of_range_is_422(seeded: Api, limit: int) -> None:
    response = seeded.get("/changes", params={"from": "2015-01-01", "limit": limit})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "limit"


def test_unknown_cursor_is_422(seeded: Api) -> None:
    response = seeded.get("/cities/kunduz/events", params={"after": "kabul-1"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "after"


def test_pages_while_events_are_appended_hold_every_row_once(api: Api) -> None:
    towns = [f"town-{n}" for n in range(4)]
    for town in towns:
        api.register(town)
        for year, kind, side in (
            (2016, "Captured", "Taliban"),
            (2017, "Retaken", "Afghan government"),
            (2018, "Captured", "Taliban"),
        ):
            assert api.report(town, kind, f"{year}-03-01", side).status_code == 201
    written: list[int] = []

    def append(page: int) -> None:
        # a backdated report (sorts before rows already listed) and a new one (after)
        town = towns[page % len(towns)]
        for day in (f"2015-0{1 + page % 9}-15", f"2019-0{1 + page % 9}-15"):
            written.append(api.report(town, "Contested", day, "ISKP").status_code)

    for url in ("/changes", "/cities/town-0/events"):
        params = {"from": "2015-01-01"} if url == "/changes" else {}
        rows, links = walk(api, url, {**params, "limit": 2}, between_pages=append)
        assert len(links) >= 2
        pinned = dict(parse_qsl(urlsplit(links[0]).query))["known_at"]
        assert all(f"known_at={quote(pinned)}" in link or pinned in link for link in links)
        reference = api.get(url, params={**params, "known_at": pinned}).json()
        ids = [r["id"] for r in rows]
        assert ids == [r["id"] for r in reference]
        assert len(ids) == len(set(ids))
        latest = api.get(url, params=params).json()
        assert len(latest) > len(reference)  # the appends happened, and are not in the walk
    assert written.count(201) >= 4


def test_timeline_pages_read_one_state_while_events_are_appended(api: Api) -> None:
    api.register("town-9")
    for year in range(2016, 2022):
        side = "Taliban" if year % 2 == 0 else "Afghan government"
        kind = "Captured" if year % 2 == 0 else "Retaken"
        assert api.report("town-9", kind, f"{year}-03-01", side).status_code == 201

    def backdate(page: int) -> None:  # splits intervals already listed and later ones
        for day in (f"2015-0{1 + page}-15", f"2021-0{4 + page}-15"):
            assert api.report("town-9", "Contested", day, "ISKP").status_code == 201

    rows, links = walk(api, "/cities/town-9/timeline", {"limit": 2}, between_pages=backdate)
    assert len(links) == 3  # 7 intervals, 2 a page
    pinned = dict(parse_qsl(urlsplit(links[0]).query))["known_at"]
    assert all(pinned in unquote(link) for link in links)
    reference = api.get("/cities/town-9/timeline", params={"known_at": pinned}).json()
    assert rows == reference and len(reference) == 7
    for earlier, later in itertools.pairwise(rows):
        assert earlier["to"] == later["from"]
    assert len(api.get("/cities/town-9/timeline").json()) > len(reference)


def test_timeline_default_page_and_cursor(seeded: Api) -> None:
    whole = seeded.get("/cities/kunduz/timeline", params={"limit": MAX_PAGE_SIZE})
    assert "link" not in whole.headers
    first = seeded.get("/cities/kunduz/timeline", params={"limit": 3})
    assert first.json() == whole.json()[:3]
    link = next_link(first)
    assert link is not None and f"after={whole.json()[2]['from']}" in link
    bad = seeded.get("/cities/kunduz/timeline", params={"after": "last-week"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "after"


def test_timeline_first_page_is_bounded(api: Api) -> None:
    api.register("town-8")
    for n in range(TIMELINE_PAGE_SIZE + 5):
        kind, side = ("Captured", "Taliban") if n % 2 == 0 else ("Retaken", "Afghan government")
        day = date(2015, 1, 2) + timedelta(days=n)
        assert api.report("town-8", kind, day.isoformat(), side).status_code == 201
    page = api.get("/cities/town-8/timeline")
    assert len(page.json()) == TIMELINE_PAGE_SIZE and next_link(page) is not None
    rows, _ = walk(api, "/cities/town-8/timeline", {})
    assert len(rows) == TIMELINE_PAGE_SIZE + 6  # the registration's interval, then one per report
