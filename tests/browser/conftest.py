"""A real `dateline serve --seed` on a free 127.0.0.1 port, headless Chromium (Debian's,
driven by Playwright) with every request that would leave 127.0.0.1 refused and
recorded, and a folder for screenshots (its path is printed at the end of the run).

Chromium is /usr/bin/chromium (`.ci/run` installs it). Without it these tests are
skipped on a developer's machine and fail under CI=true.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.api.servers import dateline, free_port, wait_until_healthy
from tests.conftest import screenshot_folder

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DATELINE_CHROMIUM", "/usr/bin/chromium")
STARTUP_SECONDS = 60


@dataclass
class Server:
    url: str
    log: Path
    token: str  # an editor's, from `dateline tokens create`

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.token}"}
        )


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{problem}; CI=true: browser tests must run")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("browser-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["DATELINE_DATABASE_URL"] = f"sqlite:///{tmp / 'page.sqlite'}"
    created = subprocess.run(
        dateline("tokens", "create", "--name", "browser-desk", "--role", "editor"),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    token = re.search(r"dl_[\w-]+", created.stdout)
    assert token, created.stdout
    port = free_port()
    log = tmp / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            dateline("serve", "--host", "127.0.0.1", "--port", str(port), "--seed"),
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(process, port, log, seconds=STARTUP_SECONDS)
        yield Server(url, log, token.group())
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@dataclass
class Guard:
    """Every request the page made, and those refused for leaving 127.0.0.1."""

    seen: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        self.seen.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != "127.0.0.1":
            self.refused.append(url)
            route.abort()
            return
        route.continue_()


@pytest.fixture
def guard() -> Guard:
    return Guard()


@pytest.fixture
def page(browser: Browser, guard: Guard) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    context.route("**/*", guard.route)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert guard.refused == [], f"requests left 127.0.0.1: {guard.refused}"
    assert errors == [], f"the page's script failed: {errors}"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = screenshot_folder(tmp_path_factory)
    path.mkdir(parents=True, exist_ok=True)
    return path
