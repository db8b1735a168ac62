"""The page's figures: its weight in bytes, the time from navigation to a drawn map,
and one slider step, on the 32 seeded cities and on N synthetic ones.

    .venv/bin/python -m bench.page [--cities 10000]

Each run builds a throw-away SQLite store (the seeds; or the seeds plus synthetic
cities registered through the application, spread over Afghanistan and each
captured once on a random day), serves it with `dateline serve` on a free port,
and drives Debian's Chromium (/usr/bin/chromium) with Playwright. Figures are
printed, not asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from bench.http import free_port
from dateline.api.routers.page import PAGE_DIR
from dateline.domain.control import EventType, Source
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings
from dateline.seeds.loader import load_seeds

ROOT = Path(__file__).resolve().parents[1]
PAGE_FILES = ("index.html", "app.js", "style.css", "borders.geojson")


def build_store(path: Path, extra_cities: int) -> None:
    app = Dateline(Settings(database_url=f"sqlite:///{path}"))  # type: ignore[call-arg]
    try:
        load_seeds(app)
        rng = random.Random(10)
        for n in range(extra_cities):
            slug = f"synthetic-{n:05d}"
            app.register_city(
                slug=slug,
                name=f"Synthetic {n}",
                province="Synthetic",
                country="Afghanistan",
                lat=round(rng.uniform(30.5, 37.5), 4),
                lon=round(rng.uniform(62.0, 71.0), 4),
                population=rng.randint(1_000, 500_000),
                initial_controller="Afghan government",
                tracked_since=date(2015, 1, 1),
            )
            day = date(2015, 1, 2) + timedelta(days=rng.randint(0, 2400))
            app.report(
                slug,
                EventType.CAPTURED,
                occurred_on=day,
                actor="Taliban",
                source=Source("synthetic", None, None),
                reported_by="bench",
            )
    finally:
        app.close()


def page_weight() -> tuple[int, int]:
    raw = [(PAGE_DIR / name).read_bytes() for name in PAGE_FILES]
    return sum(len(b) for b in raw), sum(len(gzip.compress(b)) for b in raw)


def measure(extra_cities: int, log: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "page.sqlite"
        started = time.perf_counter()
        build_store(store, extra_cities)
        built = time.perf_counter() - started
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
        env["DATELINE_DATABASE_URL"] = f"sqlite:///{store}"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log, "wb") as output:
            server = subprocess.Popen(
                [sys.executable, "-m", "dateline.api.cli", "serve", "--port", str(port)],
                env=env,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            figures = measure_url(url)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"store_build_s": built, **figures}


def measure_url(url: str) -> dict[str, float]:
    """Load the page of the server at `url` and take five slider steps."""
    status_bytes = len(httpx.get(f"{url}/status").content)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/?as_of=2021-08-07")
        page.wait_for_selector("body[data-ready=true]", timeout=120_000)
        drawn = page.evaluate("window.datelineTimings.drawn")
        transferred = page.evaluate(
            "performance.getEntriesByType('resource').concat("
            "performance.getEntriesByType('navigation'))"
            ".reduce((n, e) => n + e.transferSize, 0)"
        )
        steps, fetches, draws = [], [], []
        for _ in range(5):
            before = page.get_attribute("#map", "data-as-of")
            clock = time.perf_counter()
            page.focus("#slider")
            page.keyboard.press("ArrowRight")
            page.wait_for_selector(f'svg#map:not([data-as-of="{before}"])', timeout=60_000)
            steps.append((time.perf_counter() - clock) * 1000)
            fetches.append(page.evaluate("window.datelineTimings.lastFetch"))
            draws.append(page.evaluate("window.datelineTimings.lastDraw"))
        browser.close()
    steps.sort()
    fetches.sort()
    draws.sort()
    return {
        "cities": float(len(httpx.get(f"{url}/status").json())),
        "status_json_bytes": status_bytes,
        "transferred_bytes": transferred,
        "load_to_drawn_map_ms": drawn,
        "slider_step_median_ms": steps[len(steps) // 2],
        "of_which_fetch_ms": fetches[len(fetches) // 2],
        "of_which_draw_ms": draws[len(draws) // 2],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.page", description=__doc__)
    parser.add_argument("--cities", type=int, default=10_000, help="synthetic cities to add")
    parser.add_argument("--url", help="measure the page of a server already running there")
    args = parser.parse_args(argv)
    raw, gzipped = page_weight()
    print(f"page files ({', '.join(PAGE_FILES)}): {raw} bytes, {gzipped} gzipped")
    if args.url:
        figures = measure_url(args.url)
        print(", ".join(f"{k} {v:.0f}" for k, v in figures.items()))
        return 0
    log = Path(tempfile.gettempdir()) / "dateline-bench-page-server.log"
    for extra in (0, args.cities):
        figures = measure(extra, log)
        print(", ".join(f"{k} {v:.0f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
