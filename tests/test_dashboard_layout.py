"""Every view of the dashboard at a desktop's and a phone's width, and by keyboard: the
page never scrolls sideways, and every control can be reached with Tab and has a name a
screen reader can say. Runs on the sample database, as a viewer and as a trader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from tests.browser_support import SIZES, Watched, dashboard_settings
from tests.live_server import serve_in_thread

VIEWS = ["market", "signals", "suggestions", "council", "portfolio", "chat", "jobs", "models"]

# Controls that are shown but have no name (text, aria-label, a <label>, title): each one a
# description of the element. Runs in the page (CDP evaluation, which the CSP allows).
UNNAMED = """() => [...document.querySelectorAll('button, input, select, textarea, a[href]')]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => !((el.textContent || '').trim() || el.getAttribute('aria-label')
      || (el.labels && el.labels.length) || el.title))
  .map((el) => el.outerHTML.slice(0, 120))"""

# Controls that are shown but that Tab never reaches.
UNREACHABLE = """() => [...document.querySelectorAll('button, input, select, textarea, a[href]')]
  .filter((el) => el.offsetParent !== null && !el.disabled && el.tabIndex < 0)
  .map((el) => el.outerHTML.slice(0, 120))"""

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.fixture
def trader_token(sample_db_url: str) -> str:
    engine = make_engine(sample_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        issued = issue_token(session, "layout-trader", Role.TRADER)
    engine.dispose()
    return issued.secret


@pytest.fixture
def server(sample_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    settings = dashboard_settings(sample_db_url, book_interval_ms=500)
    with serve_in_thread(create_app(settings)) as url:
        yield url


def _walk(page: Page, server: str) -> list[str]:
    """Each view at each size: what is wrong with it, in words."""
    problems: list[str] = []
    for view in VIEWS:
        page.goto(f"{server}/#{view}")
        expect(page.locator("#view h2").first).to_be_visible(timeout=10_000)
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(100)  # a layout pass at the new width
            if (extra := page.evaluate(OVERFLOW)) > 0:
                problems.append(f"{view} at {size}: the page scrolls {extra} px sideways")
            problems += [f"{view} at {size}: no name: {el}" for el in page.evaluate(UNNAMED)]
            problems += [f"{view}: Tab skips {el}" for el in page.evaluate(UNREACHABLE)]
    return problems


def _walk_model_jobs(page: Page, server: str) -> list[str]:
    """The Jobs view's model job form shows each kind's own fields: each kind at each size."""
    problems: list[str] = []
    page.goto(f"{server}/#jobs")
    form = page.locator("#model-job-form")
    expect(form).to_be_visible(timeout=10_000)
    for kind in ("Pattern scan", "Suggestion", "Training"):
        form.get_by_role("radio", name=kind).check()
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(100)
            if (extra := page.evaluate(OVERFLOW)) > 0:
                problems.append(f"jobs ({kind}) at {size}: the page scrolls {extra} px sideways")
            problems += [f"jobs ({kind}) at {size}: no name: {el}" for el in page.evaluate(UNNAMED)]
            problems += [f"jobs ({kind}): Tab skips {el}" for el in page.evaluate(UNREACHABLE)]
    return problems


def test_every_view_fits_a_phone_and_a_desktop_and_is_named_for_the_keyboard(
    server: str, page: Watched, trader_token: str
) -> None:
    assert _walk(page.page, server) == []
    page.page.evaluate("t => sessionStorage.setItem('aitrader.token', t)", trader_token)
    page.page.reload()
    expect(page.page.locator("#who")).to_have_text("layout-trader (trader)", timeout=10_000)
    assert _walk(page.page, server) == []  # a trader sees the forms and buttons too
    assert _walk_model_jobs(page.page, server) == []
    # No council has sat on this database: the view says so in words, and asks nothing
    # that the browser would log as a failed request.
    assert page.own_errors() == []
    assert page.only_asked(server)
