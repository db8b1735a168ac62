"""The page as a reader uses it: the map on a date, the slider, "as known at", the city
panel, the changes, the table, the offline API docs. Each test fails if any
request leaves 127.0.0.1 (see conftest.Guard) or the page's script throws."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from tests.browser.conftest import Guard, Server

KUNDUZ_SOURCE = "https://www.dawn.com/news/1209540"


def open_page(page: Page, server: Server, query: str = "") -> None:
    page.goto(f"{server.url}/{query}")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)


def wait_for_map(page: Page, as_of: str) -> None:
    page.wait_for_selector(f'svg#map[data-as-of="{as_of}"]', timeout=15_000)


def row(page: Page, slug: str) -> dict[str, str]:
    """The table's text for one city: what a screen reader reads."""
    cells = page.locator(f'#cities-table tr[data-city="{slug}"] > *').all_inner_texts()
    names = ("name", "province", "status", "controller", "contested_by", "since")
    return dict(zip(names, cells, strict=True))


def marker(page: Page, slug: str) -> dict[str, str | None]:
    circle = page.locator(f'#cities circle[data-city="{slug}"]')
    return {
        "controller": circle.get_attribute("data-controller"),
        "status": circle.get_attribute("data-status"),
        "class": circle.get_attribute("class"),
    }


def url_state(page: Page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}


def test_kunduz_falls_in_september_2015_and_is_retaken_by_october(
    page: Page, server: Server, screenshots: Path, guard: Guard
) -> None:
    open_page(page, server, "?as_of=2015-09-29")
    wait_for_map(page, "2015-09-29")
    assert row(page, "kunduz")["controller"] == "Taliban"
    assert row(page, "kunduz")["status"] == "held"
    assert marker(page, "kunduz")["controller"] == "Taliban"
    expect(page.locator("#legend")).to_contain_text("Taliban")
    expect(page.locator("#legend")).to_contain_text("contested")
    page.screenshot(path=screenshots / "kunduz-2015-09-29.png", full_page=True)

    page.fill("#as-of", "2015-10-14")
    wait_for_map(page, "2015-10-14")
    assert row(page, "kunduz")["controller"] == "Afghan government"
    assert marker(page, "kunduz")["controller"] == "Afghan government"
    assert url_state(page)["as_of"] == "2015-10-14"
    page.screenshot(path=screenshots / "kunduz-2015-10-14.png", full_page=True)
    assert any(u.startswith(server.url + "/status?") for u in guard.seen)
    assert any(u.endswith("/page/borders.geojson") for u in guard.seen)


def test_the_slider_reaches_the_fall_of_the_north(
    page: Page, server: Server, screenshots: Path
) -> None:
    open_page(page, server, "?as_of=2021-08-07")
    wait_for_map(page, "2021-08-07")
    assert row(page, "kunduz")["status"] == "contested"
    assert "contested" in (marker(page, "kunduz")["class"] or "")
    page.focus("#slider")
    page.keyboard.press("ArrowRight")  # one day, from the keyboard
    wait_for_map(page, "2021-08-08")
    for slug in ("kunduz", "sar-e-pol", "sheberghan"):
        assert (row(page, slug)["status"], row(page, slug)["controller"]) == ("held", "Taliban")
        assert marker(page, slug)["controller"] == "Taliban"
    assert page.input_value("#as-of") == "2021-08-08"
    assert page.get_attribute("#slider", "aria-valuetext") == "2021-08-08"
    assert url_state(page)["as_of"] == "2021-08-08"
    expect(page.locator("#summary")).to_contain_text("2021-08-08")
    page.screenshot(path=screenshots / "2021-08-08.png", full_page=True)


def test_next_change_and_play_step_through_the_changes(page: Page, server: Server) -> None:
    open_page(page, server, "?as_of=2021-08-06")
    with server.client() as client:
        after = client.get("/changes", params={"from": "2021-08-07", "limit": 1}).json()
    page.click("#next-change")
    wait_for_map(page, after[0]["occurred_on"])
    start = page.input_value("#as-of")
    page.click("#play")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#map")).not_to_have_attribute("data-as-of", start, timeout=15_000)
    assert (page.locator("#map").get_attribute("data-as-of") or "") > start
    page.click("#play")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")


def test_as_known_at_before_a_backdated_report_shows_the_earlier_answer(
    page: Page, server: Server, screenshots: Path
) -> None:
    with server.client() as client:
        seeds = client.get("/cities/kunduz/events").json()
        last_seed = max(datetime.fromisoformat(e["recorded_at"]) for e in seeds)
        # the page's "as known at" has whole seconds: one that all the seeds are in
        known = last_seed.replace(microsecond=0) + timedelta(seconds=1)
        while datetime.now(UTC) < known + timedelta(milliseconds=200):
            time.sleep(0.05)
        report = client.post(
            "/cities/kunduz/events",
            json={
                "type": "Contested",
                "occurred_on": "2015-09-26",
                "actor": "Taliban",
                "source": {"name": "Wall Street Journal", "url": "https://www.wsj.com/"},
                "report_id": "browser-test-wsj-2015-09-26",
            },
        )
        assert report.status_code in (200, 201), report.text
    assert datetime.fromisoformat(report.json()["recorded_at"]) > known

    open_page(page, server, "?as_of=2015-09-27&from=2015-09-20&to=2015-09-27")
    wait_for_map(page, "2015-09-27")
    assert row(page, "kunduz")["status"] == "contested"  # the latest record
    assert row(page, "kunduz")["contested_by"] == "Taliban"
    expect(page.locator("#changes-list")).to_contain_text("Wall Street Journal")

    page.fill("#known-at", known.strftime("%Y-%m-%dT%H:%M:%S"))
    page.wait_for_selector('svg#map[data-known-at$="Z"]', timeout=15_000)
    assert (row(page, "kunduz")["status"], row(page, "kunduz")["controller"]) == (
        "held",
        "Afghan government",
    )
    assert row(page, "kunduz")["contested_by"] == ""
    assert url_state(page)["known_at"] == known.strftime("%Y-%m-%dT%H:%M:%SZ")
    expect(page.locator("#summary")).to_contain_text("as known at")
    expect(page.locator("#changes-list")).to_contain_text("No change in control")
    page.screenshot(path=screenshots / "kunduz-2015-09-27-as-known-before.png", full_page=True)

    page.click("#latest")
    page.wait_for_selector('svg#map[data-known-at=""]', timeout=15_000)
    assert row(page, "kunduz")["status"] == "contested"


def test_the_city_panel_lists_kunduz_events_with_sources(
    page: Page, server: Server, screenshots: Path
) -> None:
    open_page(page, server, "?as_of=2015-09-29&city=kunduz")
    panel = page.locator("#panel")
    expect(panel.locator("h2")).to_have_text("Kunduz")
    expect(panel.locator(".status-line")).to_contain_text("held by Taliban since 2015-09-28")
    capture = panel.locator("#event-kunduz-3")
    expect(capture).to_contain_text("2015-09-28")
    expect(capture).to_contain_text("Captured by Taliban")
    expect(capture.locator("a")).to_have_attribute("href", KUNDUZ_SOURCE)
    expect(capture.locator("a")).to_have_text("dawn.com")
    expect(capture).to_contain_text("reported by seed")
    assert panel.locator("ol.events > li").count() >= 10
    assert panel.locator("#timeline rect").count() >= 9  # one per control interval
    page.screenshot(path=screenshots / "kunduz-panel.png", full_page=True)


def test_a_retraction_is_struck_through_with_its_reason(page: Page, server: Server) -> None:
    with server.client() as client:
        reported = client.post(
            "/cities/bamyan/events",
            json={
                "type": "Contested",
                "occurred_on": "2016-05-05",
                "actor": "ISKP",
                "source": {"name": "a rumour mill"},
                "report_id": "browser-test-bamyan-rumour",
            },
        )
        assert reported.status_code in (200, 201), reported.text
        event = reported.json()["id"]
        retracted = client.post(
            f"/cities/bamyan/events/{event}/retraction",
            json={"reason": "single unconfirmed source"},
        )
        assert retracted.status_code in (201, 409), retracted.text  # 409: a rerun
    open_page(page, server, "?city=bamyan")
    item = page.locator(f"#event-{event}")
    expect(item).to_have_class("retracted")
    expect(item.locator("del")).to_contain_text("Contested by ISKP")
    expect(item).to_contain_text("single unconfirmed source")


def test_the_table_is_keyboard_operable(page: Page, server: Server) -> None:
    open_page(page, server, "?as_of=2021-08-15")
    assert page.locator("#cities-table tbody tr").count() == 32
    page.focus('#cities-table button[data-city="kabul"]')
    page.keyboard.press("Enter")
    expect(page.locator("#panel h2")).to_have_text("Kabul")
    expect(page.locator("#panel h2")).to_be_focused()
    assert url_state(page)["city"] == "kabul"


def test_changes_between_two_dates(page: Page, server: Server) -> None:
    open_page(page, server, "?as_of=2021-08-15&from=2021-08-06&to=2021-08-08")
    changes = page.locator("#changes-list")
    expect(changes).to_contain_text("2021-08-08")
    kunduz = changes.locator("li", has=page.locator('button[data-city="kunduz"]'))
    expect(kunduz).to_contain_text("Captured by Taliban")
    expect(kunduz.locator("a")).to_have_text("moneycontrol.com")
    page.fill("#changes-from", "2015-09-28")
    page.fill("#changes-to", "2015-09-28")
    page.click("#show-changes")
    expect(changes.locator("li")).to_have_count(2)  # Contested and Captured, both Kunduz
    assert url_state(page)["from"] == "2015-09-28"
    expect(page.locator("#changes-csv")).to_have_attribute(
        "href", "/changes.csv?from=2015-09-28&to=2015-09-28"
    )


def test_a_city_url_opens_the_page_on_that_city(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/cities/kunduz")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert urlsplit(page.url).path == "/"
    expect(page.locator("#panel h2")).to_have_text("Kunduz")


def test_api_docs_work_offline(page: Page, server: Server, guard: Guard) -> None:
    page.goto(f"{server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Dateline", timeout=30_000)
    page.goto(f"{server.url}/redoc")
    expect(page.locator("h1").first).to_contain_text("Dateline", timeout=30_000)
    assert any("/static-offline-docs/" in u for u in guard.seen)
