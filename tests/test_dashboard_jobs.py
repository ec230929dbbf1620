"""The dashboard's Jobs view in a real browser (tests/browser_support.py), on the sample
bars: a trader starts a backtest sweep from the form, watches it finish in the list
(live, over the WebSocket), and opens its result; a bad form is refused with the
server's reason. The job runs the real flow in a worker process of the server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from tests.browser_support import Watched, dashboard_settings, shoot
from tests.live_server import serve_in_thread


@pytest.fixture
def jobs_server(
    sample_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """The app on the sample bars, running jobs in worker processes; a trader's token."""
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sample_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        token = issue_token(session, "dana", Role.TRADER).secret
    engine.dispose()
    settings = dashboard_settings(
        sample_db_url,
        jobs_runner="process",
        job_poll_interval_ms=100,
        jobs_log_dir=tmp_path / "jobs",
        backtest_plot_dir=tmp_path / "plots",
        book_feed="none",
        log_level="WARNING",
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url, token


def test_a_trader_starts_a_sweep_watches_it_finish_and_reads_its_result(
    jobs_server: tuple[str, str], page: Watched
) -> None:
    server, token = jobs_server
    p = page.page
    p.goto(server + "/#jobs")
    start = p.get_by_role("button", name="Start backtest")
    expect(p.locator("#backtest-hint")).to_have_text("Sign in as a trader to start a backtest.")
    expect(start).to_be_disabled()  # the anonymous local reader is a viewer
    expect(p.locator("#jobs-empty")).to_have_text("No job yet.")

    p.click("#sign-in")
    p.fill("#token", token)
    p.click("#token-ok")
    expect(p.locator("#who")).to_have_text("dana (trader)")
    expect(start).to_be_enabled()
    expect(p.locator("#feed-jobs")).to_have_attribute("data-state", "live")

    # A bad form: the server's reason beside the button, and no job started.
    form = p.locator("#backtest-form")
    form.get_by_label("Symbols").fill("AAPL, MSFT")
    form.get_by_label("From", exact=True).fill("2018-12-31")
    form.get_by_label("To", exact=True).fill("2017-01-01")
    start.click()
    outcome = p.locator("#backtest-outcome")
    expect(outcome).to_contain_text("must be after start 2018-12-31")
    expect(outcome).to_have_class("error")
    expect(p.locator("#jobs tbody tr")).to_have_count(0)

    # A sweep over two values of `fast`, started by keyboard.
    form.get_by_label("From", exact=True).fill("2017-01-01")
    form.get_by_label("To", exact=True).fill("2018-12-31")
    form.get_by_label("Parameters").fill("fast=5,10 slow=40")
    form.get_by_label("Parameters").press("Enter")
    expect(outcome).to_have_text("Started job #1.")
    job = p.locator('#jobs tbody tr[data-id="1"]')
    expect(job).to_contain_text("backtest")
    expect(job).to_have_attribute("data-status", "completed", timeout=90_000)
    expect(job).to_contain_text("dana")
    documents = [u for u in page.requests if urlsplit(u).path == "/"]
    assert len(documents) == 1  # followed live: the page was never loaded again

    # Its result: metrics beside buy-and-hold, both curves drawn, every set, the trades.
    p.get_by_role("button", name="Show backtest job 1's result").click()
    expect(p.locator("#backtest-title")).to_contain_text("sma_cross on AAPL, MSFT")
    sharpe = p.locator('#backtest-metrics tr[data-metric="sharpe"] td')
    expect(sharpe).to_have_count(2)
    for i in range(2):
        expect(sharpe.nth(i)).to_have_text(re.compile(r"^-?\d+\.\d\d$"))
    final = p.locator('#backtest-metrics tr[data-metric="final_equity"] td')
    expect(final.first).to_have_text(re.compile(r"^\d{1,3}(,\d{3})+\.\d\d$"))
    chart = p.locator("#equity-chart")
    expect(chart.locator("canvas").first).to_be_visible()
    assert int(chart.get_attribute("data-points") or 0) > 400  # two years of daily closes
    expect(p.locator("#backtest-sets tbody tr")).to_have_count(2)
    expect(p.locator('#backtest-sets tbody tr[aria-selected="true"]')).to_have_count(1)
    trades = p.locator("#backtest-trades tbody tr")
    expect(trades.first).to_be_visible()
    expect(trades.first.locator("th")).to_have_text(re.compile(r"^(AAPL|MSFT)$"))

    shoot(p, "jobs")
    # At a desktop's or a phone's width the page never scrolls sideways: tables scroll inside.
    for width, height in ((1280, 800), (390, 844)):
        p.set_viewport_size({"width": width, "height": height})
        assert p.evaluate("document.documentElement.scrollWidth") <= width
    # The refused form's 422 is logged by the browser as a failed load, nothing else.
    assert [e for e in page.own_errors() if "status of 422" not in e] == []
    assert page.only_asked(server)
