"""Sentiment beside prices and the news behind it, in a real browser (tests/browser_support.py),
against the realtime app on a real uvicorn server and both databases.

The Market view shows each symbol's sentiment (score, item count, change) from the stored and
scored news, "—" for a symbol without news (here one that is not even an instrument: the list
is asked for without naming symbols, so it is no 422). Picking a symbol's sentiment opens its
news, newest first, with each item's label, score and scorer, and its stored sentiment as a
line. A figure the sentiment flow stores after the page opened reaches the cell and the panel
over the WebSocket, without a reload. Headlines are text: markup in one stays markup-free, and
only an http(s) URL becomes a link.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.instruments import ensure_instruments
from db.queries.news import insert_news
from db.queries.sentiment import store_sentiment
from models.news import NewsRecord
from services.sentiment.lexicon import LexiconScorer
from tasks.import_news import content_hash
from tasks.sentiment import score_pending, sentiment_as_of, sentiment_params
from tests.browser_support import Watched, dashboard_settings, shoot
from tests.live_server import serve_in_thread
from tests.news_factories import FAR, add_news

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]  # no news of DDD (not an instrument) or EEE
LEXICON = LexiconScorer().name
XSS = "<img src=x onerror=\"document.title='owned'\"> CCC beats estimates"


@pytest.fixture
def server(migrated_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """The app on news known a few hours ago (inside the sentiment window of now), with two
    stored figures of AAA's sentiment; the feed polls for new figures every 100 ms."""
    monkeypatch.chdir(tmp_path)
    settings = dashboard_settings(
        migrated_db_url, realtime_symbols=SYMBOLS, job_poll_interval_ms=100
    )
    now = datetime.now(UTC)

    def ago(hours: float) -> datetime:
        return now - timedelta(hours=hours)

    engine = make_engine(migrated_db_url)
    sessions = make_session_factory(engine)
    with unit_of_work(sessions) as session:
        ensure_instruments(session, ["AAA", "BBB", "CCC", "EEE"])
    add_news(
        sessions, "a0", "AAA slumps on weak outlook", ["AAA"], ago(30)
    )  # what `change` compares with
    add_news(sessions, "a1", "AAA misses estimates, shares tumble", ["AAA"], ago(5))
    add_news(sessions, "a2", "AAA shares soar after record earnings", ["AAA"], ago(3))
    add_news(sessions, "b1", "BBB stock plunges after downgrade", ["BBB"], ago(2))
    _archive_item(sessions, "c1", "CCC to hold annual meeting", "javascript:alert(1)", ago(6))
    _archive_item(sessions, "c2", "CCC shares surge", "https://news.example/ccc?a=1&b=2", ago(4))
    add_news(sessions, "c3", XSS, ["CCC"], ago(1))
    params = sentiment_params(settings)
    with unit_of_work(sessions) as session:
        for hours in (2, 1):
            report = sentiment_as_of(session, ["AAA"], ago(hours), params)
            store_sentiment(session, report.symbols)
    engine.dispose()
    with serve_in_thread(create_app(settings)) as url:
        yield url


def test_prices_show_sentiment_and_its_news_and_a_new_figure_arrives_live(
    migrated_db_url: str, server: str, page: Watched
) -> None:
    view = page.page
    view.goto(server + "/")
    expect(view.locator("#prices tbody tr")).to_have_count(5, timeout=10_000)
    aaa, bbb = _cell(view, "AAA"), _cell(view, "BBB")
    expect(aaa).to_have_attribute("data-count", "3", timeout=10_000)
    expect(aaa.locator(".sent-count")).to_have_text("3")
    expect(aaa.locator(".sent-change")).to_have_text("▲")  # better than a day before
    title = aaa.get_attribute("title") or ""
    assert title.startswith(f"{LEXICON}: 3 items from "), title
    assert re.search(r"; change \+0\.\d\d against 1 day before$", title), title
    expect(bbb).to_have_attribute("data-sign", "down")
    expect(bbb.locator(".sent-score")).to_have_text(re.compile(r"^-0\.\d\d$"))
    expect(bbb).to_have_attribute(
        "title", re.compile(f"^{re.escape(LEXICON)}: 1 item from .+ to .+")
    )
    expect(_cell(view, "DDD")).to_have_text("—")
    expect(_cell(view, "DDD")).to_have_attribute("data-count", "0")

    # The news behind AAA's figure, by keyboard: newest first, each labelled by its scorer.
    aaa.focus()
    view.keyboard.press("Enter")
    expect(view.locator("#news-title")).to_have_text("AAA: news and sentiment")
    expect(view.locator("#news-title")).to_be_focused()
    expect(view.locator("#detail-title")).to_have_text("AAA")  # chart and book beside it
    items = view.locator("#news-list .news-item")
    expect(items.locator(".news-headline")).to_have_text(
        [
            "AAA shares soar after record earnings",
            "AAA misses estimates, shares tumble",
            "AAA slumps on weak outlook",
        ],
        timeout=10_000,
    )
    assert [items.nth(i).get_attribute("data-label") for i in range(3)] == [
        "positive",
        "negative",
        "negative",
    ]
    expect(items.locator(".news-value")).to_have_text(
        [re.compile(r"^\+0\.\d\d$"), re.compile(r"^-0\.\d\d$"), re.compile(r"^-0\.\d\d$")]
    )
    expect(items.locator(".news-scorer")).to_have_text([f"by {LEXICON}"] * 3)
    expect(items.locator(".published-tag")).to_have_count(0)  # received, not an archive's
    chart = view.locator("#sentiment-chart")
    expect(chart).to_have_attribute("data-points", "2")
    expect(chart.locator("canvas").first).to_be_attached()
    expect(view.locator("#sentiment-history-note")).to_contain_text("2 stored figures from")
    expect(view.locator("#feed-sentiment")).to_have_attribute("data-state", "live")

    # The sentiment flow scores a new item and stores AAA's figure: no reload.
    engine = make_engine(migrated_db_url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    add_news(sessions, "a3", "AAA upgraded as shares surge", ["AAA"], now - timedelta(minutes=1))
    with unit_of_work(sessions) as session:
        params = sentiment_params(dashboard_settings(migrated_db_url))
        report = sentiment_as_of(session, ["AAA"], now, params)
        assert store_sentiment(session, report.symbols) == 1
    engine.dispose()
    expect(aaa).to_have_attribute("data-count", "4", timeout=10_000)
    expect(aaa.locator(".sent-count")).to_have_text("4")
    expect(items.first.locator(".news-headline")).to_have_text("AAA upgraded as shares surge")
    expect(items).to_have_count(4)
    expect(chart).to_have_attribute("data-points", "3")
    shoot(view, "market-sentiment")
    assert page.own_errors() == [], page.errors
    assert page.only_asked(server)


def test_headlines_are_text_and_only_a_web_url_is_a_link(server: str, page: Watched) -> None:
    view = page.page
    view.goto(server + "/")
    ccc = _cell(view, "CCC")
    expect(ccc).to_have_attribute("data-count", "3", timeout=10_000)
    ccc.click()
    items = view.locator("#news-list .news-item")
    expect(items.locator(".news-headline")).to_have_text(
        [XSS, "CCC shares surge", "CCC to hold annual meeting"], timeout=10_000
    )
    expect(view.locator("#news-list img")).to_have_count(0)
    assert view.title() == "AITrader"
    # An archive's items are known from publication, and say so; only https became a link.
    assert [items.nth(i).get_attribute("data-known-from") for i in range(3)] == [
        "received",
        "published",
        "published",
    ]
    expect(items.nth(1).locator(".published-tag")).to_have_text("published")
    links = view.locator("#news-list a")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://news.example/ccc?a=1&b=2")
    expect(links).to_have_attribute("rel", "noopener noreferrer")
    expect(items.nth(2).locator(".news-source")).to_have_text("archive")

    # A symbol without news says how to get some; no stored figure, no chart.
    _cell(view, "EEE").click()
    expect(view.locator("#news-title")).to_have_text("EEE: news and sentiment")
    expect(view.locator("#news-summary")).to_have_text(
        "No news known for EEE: import an archive with aitrader data news FILE or set "
        "NEWS_SOURCE=alpaca; the sentiment job scores it.",
        timeout=10_000,
    )
    expect(view.locator("#news-list .news-item")).to_have_count(0)
    expect(view.locator("#sentiment-chart")).to_be_hidden()
    expect(view.locator("#sentiment-history-note")).to_contain_text("No stored sentiment yet")
    assert page.own_errors() == [], page.errors


def _cell(view: Page, symbol: str) -> Locator:
    return view.locator(f'#prices tr[data-symbol="{symbol}"] .sent-pick')


def _archive_item(
    sessions: sessionmaker[Session], source_id: str, headline: str, url: str, published: datetime
) -> None:
    """An archive's item: no receipt time, so known from when it was published."""
    record = NewsRecord(
        source="archive",
        source_id=source_id,
        headline=headline,
        symbols=["CCC"],
        published_at=published,
        url=url,
    )
    with unit_of_work(sessions) as session:
        insert_news(session, [(record, content_hash(record))])
    score_pending(sessions, LexiconScorer(), until=FAR)
