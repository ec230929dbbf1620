"""The dashboard's Market and Signals views in a real browser (tests/browser_support.py),
against the realtime app on a real uvicorn server (simulated prices)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect

from api.app import create_app
from tests.browser_support import CHROMIUM, Watched, dashboard_settings, shoot
from tests.live_server import free_port, serve_in_thread

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]


@pytest.fixture
def server(migrated_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    with serve_in_thread(
        create_app(dashboard_settings(migrated_db_url, realtime_symbols=SYMBOLS))
    ) as url:
        yield url


def test_the_market_loads_clean_moves_within_two_seconds_and_filters_by_keyboard(
    server: str, page: Watched
) -> None:
    page.page.goto(server + "/")
    rows = page.page.locator("#prices tbody tr")
    rows.first.wait_for(timeout=10_000)
    expect(rows).to_have_count(4)
    assert [rows.nth(i).get_attribute("data-symbol") for i in range(4)] == SYMBOLS
    assert page.page.locator("#feed-prices").get_attribute("data-state") == "live"

    # Prices move within 2 s, each change flashes, the sparkline grows with them.
    cell = page.page.locator('#prices tr[data-symbol="AAA"] .price')
    first = cell.inner_text()
    # expect(), not wait_for_function: the page's CSP forbids evaluating strings.
    expect(cell).not_to_have_text(first, timeout=2_000)
    flashed = page.page.locator("#prices .price.flash-up, #prices .price.flash-down")
    flashed.first.wait_for(timeout=2_000)
    points = page.page.locator('#prices tr[data-symbol="AAA"] polyline').get_attribute("points")
    assert points is not None
    assert len(points.split()) >= 2
    shoot(page.page, "market")

    # By keyboard: Tab passes the views' links, then reaches the filter.
    page.page.locator("body").focus()
    page.page.keyboard.press("Tab")
    for _ in range(12):
        if page.page.evaluate("document.activeElement.id") == "symbol-filter":
            break
        page.page.keyboard.press("Tab")
    assert page.page.evaluate("document.activeElement.id") == "symbol-filter"
    page.page.keyboard.type("bb")
    visible = page.page.locator("#prices tbody tr:not([hidden])")
    assert [visible.nth(i).get_attribute("data-symbol") for i in range(visible.count())] == ["BBB"]

    assert page.errors == []
    origin = urlsplit(server).netloc
    assert {urlsplit(url).netloc for url in page.requests} == {origin}


def test_a_refused_token_is_said_in_the_sign_in_dialog_and_nothing_is_kept(
    server: str, page: Watched
) -> None:
    page.page.goto(server + "/")
    page.page.click("#sign-in")
    page.page.fill("#token", "not-a-token")
    page.page.click("#token-ok")
    error = page.page.locator("#token-error")
    error.wait_for(state="visible", timeout=5_000)
    assert error.inner_text()  # the server's reason, in words
    assert page.page.evaluate("sessionStorage.getItem('aitrader.token')") is None
    assert page.page.locator("#who").inner_text() == "anonymous (local)"
    # The 401 behind the refusal is logged by the browser as a failed load, nothing else.
    assert all("401" in e for e in page.errors), page.errors


def test_a_view_that_fails_to_load_says_so_and_the_others_keep_working(
    server: str, page: Watched
) -> None:
    # A broken module (a bad deploy, a proxy's error page) served for one view only.
    page.page.route(
        "**/ui/chat.js",
        lambda route: route.fulfill(
            status=200, content_type="text/javascript", body="export function chatView( {"
        ),
    )
    page.page.goto(server + "/#chat")
    alert = page.page.locator("#view [role=alert]")
    expect(alert).to_contain_text("This view could not load", timeout=10_000)
    expect(page.page.locator('nav a[data-view="chat"]')).to_have_attribute("aria-current", "page")
    page.page.click('nav a[data-view="market"]')
    expect(page.page.locator("#prices tbody tr")).to_have_count(4, timeout=10_000)
    expect(page.page.locator("#feed-prices")).to_have_attribute("data-state", "live")
    expect(alert).to_have_count(0)


def test_chromium_is_debians_not_a_playwright_download() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("no system chromium")
    assert shutil.which("chromium") == CHROMIUM or Path(CHROMIUM).is_file()


@pytest.fixture
def sample_server(
    sample_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """The app on the sample's stored bars: real symbols, a chart to draw, books to quote."""
    monkeypatch.chdir(tmp_path)
    with serve_in_thread(
        create_app(dashboard_settings(sample_db_url, book_interval_ms=200))
    ) as url:
        yield url


def test_a_symbol_shows_its_candles_with_the_live_tail_and_its_order_book(
    sample_server: str, page: Watched
) -> None:
    page.page.goto(sample_server + "/")
    pick = page.page.get_by_role("button", name="Show AAPL's chart and book")
    pick.wait_for(timeout=10_000)
    pick.focus()
    page.page.keyboard.press("Enter")  # by keyboard, as by mouse
    expect(page.page.locator("#detail-title")).to_have_text("AAPL")
    expect(page.page.locator('#prices tr[data-symbol="AAPL"]')).to_have_attribute(
        "aria-selected", "true"
    )
    note = page.page.locator("#chart-note")
    expect(note).to_contain_text("daily bars to", timeout=10_000)
    assert int(note.inner_text().split()[0]) > 100  # the sample's year and more of bars
    assert page.page.locator("#chart canvas").count() > 0  # drawn
    book = page.page.locator("#book-state")
    expect(book).to_contain_text("NBBO", timeout=10_000)
    expect(page.page.locator("#book tbody tr").first).to_be_visible()
    assert page.errors == []  # the chart library runs under the page's CSP
    origin = urlsplit(sample_server).netloc
    assert {urlsplit(url).netloc for url in page.requests} == {origin}
    shoot(page.page, "market-symbol", readme=True)


def _store_signals(db_url: str, count: int) -> list[tuple[str, str]]:
    """`count` stored signals of the last hour, alternating sides and symbols."""
    from datetime import UTC, datetime, timedelta

    from db.engine import make_engine, make_session_factory, unit_of_work
    from db.queries.signals import ensure_strategy, insert_signals, signal_row
    from models.enums import Side

    engine = make_engine(db_url)
    now = datetime.now(UTC).replace(microsecond=0)
    made = []
    with unit_of_work(make_session_factory(engine)) as session:
        strategy = ensure_strategy(session, "pattern_engine", "pattern", {}, "test")
        rows = []
        for i in range(count):
            symbol, side = SYMBOLS[i % len(SYMBOLS)], (Side.BUY if i % 2 == 0 else Side.SELL)
            ts = now - timedelta(minutes=count - i)
            body: dict[str, object] = {
                "symbol": symbol,
                "kind": "breakout",
                "side": side.value,
                "score": 1.5,
                "price": 100.0 + i,
                "size": 1,
                "ts": ts.isoformat(),
                "features": {},
            }
            rows.append(signal_row(strategy.id, symbol, "breakout", side, 1.5, ts, body))
            made.append((symbol, side.value))
        insert_signals(session, rows)
    engine.dispose()
    return made


def test_signals_show_the_stored_ones_then_live_and_filter_by_side_and_symbol(
    migrated_db_url: str, server: str, page: Watched
) -> None:
    made = _store_signals(migrated_db_url, 6)
    page.page.goto(server + "/#signals")
    rows = page.page.locator("#signals tbody tr")
    expect(rows).to_have_count(6, timeout=10_000)
    expect(page.page.locator("#feed-signals")).to_have_attribute("data-state", "live")
    newest = made[-1]
    assert rows.first.get_attribute("data-symbol") == newest[0]  # newest first
    page.page.select_option("#signal-side", "sell")
    expect(page.page.locator("#signals tbody tr:not([hidden])")).to_have_count(3)
    page.page.fill("#signal-symbol", "BBB")
    visible = page.page.locator("#signals tbody tr:not([hidden])")
    expected = sum(1 for symbol, side in made if side == "sell" and symbol == "BBB")
    expect(visible).to_have_count(expected)
    assert page.errors == []
    shoot(page.page, "signals")


def test_the_feeds_say_when_they_are_cut_and_come_back_by_themselves(
    migrated_db_url: str, browser: Browser, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = dashboard_settings(migrated_db_url, realtime_symbols=SYMBOLS, sse_retry_ms=300)
    port = free_port()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    watched = Watched(context.new_page())
    page = watched.page
    prices, signals = page.locator("#feed-prices"), page.locator("#feed-signals")
    try:
        with serve_in_thread(create_app(settings), port=port, cut_after_s=1) as url:
            page.goto(url + "/")
            expect(prices).to_have_attribute("data-state", "live", timeout=10_000)
        expect(prices).to_have_attribute("data-state", "reconnecting", timeout=5_000)
        with serve_in_thread(create_app(settings), port=port, cut_after_s=1):
            expect(prices).to_have_attribute("data-state", "live", timeout=15_000)
            cell = page.locator('#prices tr[data-symbol="AAA"] .price')
            before = cell.inner_text()
            expect(cell).not_to_have_text(before, timeout=5_000)  # prices move again
            page.goto(url + "/#signals")
            expect(signals).to_have_attribute("data-state", "live", timeout=10_000)
        expect(signals).to_have_attribute("data-state", "reconnecting", timeout=5_000)
        with serve_in_thread(create_app(settings), port=port, cut_after_s=1):
            expect(signals).to_have_attribute("data-state", "live", timeout=15_000)
    finally:
        context.close()
    assert watched.own_errors() == [], watched.errors
