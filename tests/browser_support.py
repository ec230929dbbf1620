"""The dashboard in a real browser, for every dashboard test module: Debian's Chromium
driven by Playwright, a page that notes its console errors and requests, and screenshots.

The browser is the system's (`/usr/bin/chromium`, `.ci/run` installs it when missing):
Playwright's own browser download is not used. Screenshots of each view at a desktop and
a phone size go to `TEST_ARTIFACTS_DIR` (default `test-artifacts/` in the checkout);
`UPDATE_README_SCREENSHOT=1` also rewrites docs/img/dashboard.png, the README's picture.
Loaded as a pytest plugin by tests/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

from services.settings import Settings

CHROMIUM = "/usr/bin/chromium"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", REPO / "test-artifacts"))
README_SHOT = REPO / "docs" / "img" / "dashboard.png"
# What a cut feed logs: the browser's own failed connections, nothing of the page's.
NETWORK_ERRORS = ("Failed to load resource: net::", "WebSocket connection to")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module; each test gets its own context (cookies, storage).
    Not per session: while Playwright's sync API runs, its event loop is this thread's
    running loop, and every later test calling `asyncio.run` would fail."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def dashboard_settings(database_url: str, **overrides: object) -> Settings:
    """The realtime app quick to show: prices every 200 ms, no pattern engine, no full GC."""
    base: dict[str, object] = {
        "database_url": database_url,
        "sim_interval_ms": 200,
        "sse_interval_ms": 200,
        "gc_full_every_s": 0,
        "pattern_engine": False,
    }
    return Settings.model_validate(base | overrides)


class Watched:
    """A page with every console error, page error and request it made, noted."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def own_errors(self) -> list[str]:
        """Console errors other than the browser's note of a failed connection."""
        return [e for e in self.errors if not e.startswith(NETWORK_ERRORS)]

    def only_asked(self, server: str) -> bool:
        """Every request this page made went to `server`, none off the machine."""
        origin = urlsplit(server).netloc
        return {urlsplit(url).netloc for url in self.requests} <= {origin}


@pytest.fixture
def page(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    watched = Watched(context.new_page())
    yield watched
    context.close()


def shoot(page: Page, view: str, readme: bool = False) -> None:
    """Each size's screenshot as a test artifact; with UPDATE_README_SCREENSHOT=1, the
    desktop one of the `readme` view also becomes the README's picture."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        path = ARTIFACTS / f"dashboard-{view}-{size}.png"
        page.screenshot(path=str(path), full_page=True)
        if readme and size == "desktop" and os.environ.get("UPDATE_README_SCREENSHOT") == "1":
            README_SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(README_SHOT), full_page=False)
    page.set_viewport_size({"width": 1280, "height": 800})
