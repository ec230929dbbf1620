"""Sentiment jobs in the Jobs view, in a real browser (tests/browser_support.py), on both
databases: a trader's To without From is refused beside the field and starts nothing; a
backfill started from the form runs the real flow in a worker process of the server and
its result shows the scorer (the lexicon, and why the configured model was not used), the
counts and each symbol's latest figure. A job's progress, written to its row the way the
flow records it (db/queries/jobs.py), moves a bar in the list and in the opened job live,
and the job's end turns the opened panel into its summary, every string of it as text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.jobs import create_job, finish_job, keep_result, record_stage
from db.queries.tokens import issue_token
from models.enums import Role, RunStatus
from services.sentiment.lexicon import LexiconScorer
from tests.browser_support import Watched, dashboard_settings, shoot
from tests.live_server import serve_in_thread
from tests.news_factories import add_news

FLOW_MS = 90_000  # a worker process starting Prefect and the flow, on a busy machine
DAY = datetime(2019, 6, 3, tzinfo=UTC)
MARKUP = '<img src=x onerror="window.__injected=1">'


class SentimentServer:
    """The app on the sample bars, running jobs in worker processes, with a trader's token;
    `write(change)` moves a job the way a flow would, in a transaction of its own."""

    def __init__(self, url: str, token: str, database_url: str, missing_model: Path) -> None:
        self.url = url
        self.token = token
        self.database_url = database_url
        self.missing_model = missing_model

    def write(self, change: Callable[[Session], object]) -> None:
        engine = make_engine(self.database_url)
        try:
            with unit_of_work(make_session_factory(engine)) as session:
                change(session)
        finally:
            engine.dispose()


@pytest.fixture
def sentiment_server(
    sample_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[SentimentServer]:
    """Two news items (AAPL good, MSFT bad) known on 2019-06-03 and 06-04, not scored yet;
    the configured sentiment model is a directory that does not exist."""
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sample_db_url)
    sessions = make_session_factory(engine)
    with unit_of_work(sessions) as session:
        token = issue_token(session, "noor", Role.TRADER).secret
    add_news(sessions, "1", "Apple shares soar after record earnings", ["AAPL"],
             DAY + timedelta(hours=15), score=False)  # fmt: skip
    add_news(sessions, "2", "Microsoft stock plunges on lawsuit", ["MSFT"],
             DAY + timedelta(days=1, hours=14), score=False)  # fmt: skip
    engine.dispose()
    missing = tmp_path / "finbert-tone"
    settings = dashboard_settings(
        sample_db_url,
        jobs_runner="process",
        job_poll_interval_ms=100,
        jobs_log_dir=tmp_path / "jobs",
        model_dir=tmp_path / "models",
        sentiment_model_dir=missing,
        book_feed="none",
        log_level="WARNING",
    )
    with serve_in_thread(create_app(settings)) as url:
        yield SentimentServer(url, token, sample_db_url, missing)


def test_a_trader_backfills_sentiment_from_the_form_and_reads_its_result(
    sentiment_server: SentimentServer, page: Watched
) -> None:
    server = sentiment_server
    p = page.page
    p.goto(server.url + "/#jobs")
    p.click("#sign-in")
    p.fill("#token", server.token)
    p.click("#token-ok")
    expect(p.locator("#who")).to_have_text("noor (trader)")
    expect(p.locator("#feed-jobs")).to_have_attribute("data-state", "live")
    form = p.locator("#model-job-form")
    form.get_by_role("radio", name="Sentiment").check()
    expect(form.get_by_label("Epochs")).to_be_hidden()
    expect(form.get_by_label("Step")).to_have_value("24")
    expect(form.get_by_text("needs From; empty: today")).to_be_visible()
    expect(form.get_by_role("button", name="Score news now")).to_be_visible()

    # To without From: the server's reason, the field marked, nothing started.
    to = form.get_by_label("To", exact=True)
    to.fill("2019-06-05")
    form.get_by_role("button", name="Score news now").click()
    expect(p.locator("#model-job-reasons li")).to_have_text(
        ["end needs start: a backfill runs from start to end"]
    )
    expect(to).to_have_attribute("aria-invalid", "true")
    expect(p.locator("#jobs tbody tr")).to_have_count(0)
    expect(p.locator("#jobs-empty")).to_have_text("No job yet.")

    # A backfill over four days, by the day.
    form.get_by_label("From", exact=True).fill("2019-06-02")
    start = form.get_by_role("button", name="Backfill sentiment")
    expect(start).to_be_visible()
    start.click()
    expect(p.locator("#model-job-outcome")).to_have_text("Started sentiment job #1.")
    expect(to).not_to_have_attribute("aria-invalid", "true")
    row = p.locator('#jobs tbody tr[data-id="1"]')
    expect(row).to_have_attribute("data-status", "completed", timeout=FLOW_MS)
    expect(row.locator(".stage")).to_contain_text("sentiment")
    expect(row.locator(".steps")).to_have_text("4 / 4 steps")
    expect(row.locator("progress")).to_have_count(0)  # a bar only while it runs

    _open(p, "Show sentiment job 1's result")
    expect(p.locator("#model-job-title")).to_have_text("Sentiment job #1")
    note = p.locator("#sentiment-scorer-note")
    expect(note).to_contain_text("The configured model was not used: ")
    expect(note).to_contain_text(str(server.missing_model))
    assert _facts(p) == {
        "mode": "backfill",
        "range": "2019-06-03 00:00 UTC to 2019-06-06 00:00 UTC",
        "scorer": LexiconScorer().name,
        "runtime": "lexicon",
        "scored": "2",
        "steps": "4",
        "stored": "5",
        "symbols": "2",
    }
    latest = p.locator("#sentiment-latest tbody tr")
    expect(latest.locator("th")).to_have_text(["AAPL", "MSFT"])
    # Each symbol's one item was known a day before the last step too: no change.
    expect(latest.nth(0).locator("td")).to_have_text([re.compile(r"^\+0\.\d{3}$"), "1", "0.000"])
    expect(latest.nth(1).locator("td")).to_have_text([re.compile(r"^-0\.\d{3}$"), "1", "0.000"])
    shoot(p, "sentiment-job")

    documents = [u for u in page.requests if urlsplit(u).path == "/"]
    assert len(documents) == 1  # followed live: the page was never loaded again
    for width, height in ((1280, 800), (390, 844)):
        p.set_viewport_size({"width": width, "height": height})
        assert p.evaluate("document.documentElement.scrollWidth") <= width
    # The refused form's 422 is logged by the browser as a failed load, nothing else.
    assert [e for e in page.own_errors() if "status of 422" not in e] == []
    assert page.only_asked(server.url)


def test_a_running_jobs_progress_moves_live_and_its_end_shows_the_summary(
    sentiment_server: SentimentServer, page: Watched
) -> None:
    server = sentiment_server
    p = page.page
    p.goto(server.url + "/#jobs")
    expect(p.locator("#feed-jobs")).to_have_attribute("data-state", "live")
    expect(p.locator("#jobs-empty")).to_have_text("No job yet.")
    params = {"start": "2019-06-01", "end": "2019-06-10"}
    server.write(lambda s: create_job(s, "sentiment", params, None, None))
    job = 1
    row = p.locator(f'#jobs tbody tr[data-id="{job}"]')
    stage = row.locator(".stage")
    expect(row).to_have_attribute("data-status", "pending")

    server.write(lambda s: record_stage(s, job, "scoring", scored=7))
    expect(stage).to_contain_text("scoring")
    expect(stage.locator(".job-progress")).to_have_text("scored 7 items")
    _open(p, f"Show sentiment job {job}'s progress")
    panel = p.locator("#model-job-progress")
    expect(panel).to_contain_text("At stage scoring.")
    expect(panel.locator(".job-progress")).to_have_text("scored 7 items")

    server.write(lambda s: record_stage(s, job, "sentiment", done=3, total=10, stored=6))
    bar = row.locator("progress")
    expect(bar).to_have_js_property("value", 3)
    expect(bar).to_have_js_property("max", 10)
    expect(row.locator(".steps")).to_have_text("3 / 10 steps")
    expect(panel.locator("progress")).to_have_js_property("value", 3)
    expect(panel.locator(".steps")).to_have_text("3 / 10 steps")
    shoot(p, "sentiment-job-progress")

    server.write(lambda s: record_stage(s, job, "sentiment", done=9, total=10, stored=18))
    expect(bar).to_have_js_property("value", 9)
    expect(panel.locator(".steps")).to_have_text("9 / 10 steps")

    # The end: the summary a flow keeps, with markup where a scorer, note or symbol could be.
    summary = _summary(scorer=MARKUP, note=f"{MARKUP} missing", symbol="<b>ZZ</b>")
    server.write(lambda s: keep_result(s, job, "sentiment", summary))
    server.write(lambda s: finish_job(s, job, RunStatus.COMPLETED))
    expect(row).to_have_attribute("data-status", "completed")
    expect(stage.locator(".steps")).to_have_text("10 / 10 steps")
    expect(row.locator("progress")).to_have_count(0)
    # Still opened: the panel became the job's result by itself.
    expect(p.locator("#model-job-progress")).to_have_count(0)
    expect(p.locator("#sentiment-scorer-note")).to_have_text(
        f"The configured model was not used: {MARKUP} missing"
    )
    assert _facts(p)["scorer"] == MARKUP
    assert _facts(p)["range"] == "2019-06-02 00:00 UTC to 2019-06-11 00:00 UTC"
    latest = p.locator("#sentiment-latest tbody tr")
    expect(latest.locator("th")).to_have_text(["<b>ZZ</b>", "AAPL"])
    expect(latest.nth(0).locator("td")).to_have_text(["-0.250", "3", "-0.100"])
    expect(p.locator("#sentiment-latest img, #sentiment-latest b, .model-job img")).to_have_count(0)
    assert p.evaluate("window.__injected") is None
    assert page.own_errors() == []


def _summary(*, scorer: str, note: str, symbol: str) -> dict[str, Any]:
    """A completed backfill's result as flows/sentiment.py keeps it."""

    def figure(name: str, score: float, count: int, change: float | None) -> dict[str, Any]:
        return {"symbol": name, "score": score, "count": count, "dispersion": 0.1,
                "change": change, "first_known_at": None, "last_known_at": None}  # fmt: skip

    return {
        "mode": "backfill",
        "from": "2019-06-02T00:00:00+00:00",
        "to": "2019-06-11T00:00:00+00:00",
        "scorer": scorer,
        "runtime": "lexicon",
        "scorer_note": note,
        "scored": 12,
        "steps": 10,
        "stored": 20,
        "symbols": 2,
        "latest": [figure(symbol, -0.25, 3, -0.1), figure("AAPL", 0.5, 2, None)],
        "done": 10,
        "total": 10,
    }


def _facts(p: Page) -> dict[str, str]:
    """The result's facts table: each row's key and its value as shown."""
    rows = p.locator("#sentiment-facts tr")
    expect(rows.first).to_be_visible()
    return {r.get_attribute("data-fact") or "": r.locator("td").inner_text() for r in rows.all()}


def _open(p: Page, name: str) -> None:
    """Activate a job's button by keyboard."""
    target = p.get_by_role("button", name=name)
    target.focus()
    target.press("Enter")
