"""The Jobs view's model jobs in a real browser (tests/browser_support.py), on the sample
bars: a trader's bad training form is refused with the server's reasons beside it and
starts nothing; a tiny training started by keyboard finishes live and its result shows the
version registered, its standing and the decision, which the Models view then serves; a
pattern scan shows what each pattern did, a suggestion job its list, and a training that
cannot run its error. Each job runs the real flow in a worker process of the server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from tests.browser_support import Watched, dashboard_settings, shoot
from tests.live_server import serve_in_thread

TRAINED_S = 180_000  # torch's import and a one-epoch fit, on a busy two-core machine
FLOW_S = 120_000


@pytest.fixture
def model_jobs_server(
    sample_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """The app on the sample bars, running jobs in worker processes; a trader's token."""
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sample_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        token = issue_token(session, "mika", Role.TRADER).secret
    engine.dispose()
    settings = dashboard_settings(
        sample_db_url,
        jobs_runner="process",
        job_poll_interval_ms=100,
        jobs_log_dir=tmp_path / "jobs",
        model_dir=tmp_path / "models",
        book_feed="none",
        log_level="WARNING",
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url, token


def test_a_trader_trains_scans_and_suggests_from_the_jobs_view(
    model_jobs_server: tuple[str, str], page: Watched
) -> None:
    server, token = model_jobs_server
    p = page.page
    p.goto(server + "/#jobs")
    form = p.locator("#model-job-form")
    expect(p.locator("#backtest-hint")).to_have_text("Sign in as a trader to start a backtest.")
    expect(form).to_be_hidden()  # the anonymous local reader is a viewer: no form at all

    p.click("#sign-in")
    p.fill("#token", token)
    p.click("#token-ok")
    expect(p.locator("#who")).to_have_text("mika (trader)")
    expect(form).to_be_visible()
    expect(p.locator("#feed-jobs")).to_have_attribute("data-state", "live")
    expect(form.get_by_role("radio", name="Training")).to_be_checked()
    expect(form.get_by_label("As of")).to_be_hidden()  # a suggestion's field, not training's

    # A bad form: each of the server's reasons beside the button, and no job started.
    start = form.get_by_role("button", name="Start training")
    reasons = p.locator("#model-job-reasons li")
    form.get_by_label("Symbols").fill("AAPL, MSFT, XOM")
    form.get_by_label("Window").fill("61")
    start.click()
    expect(reasons).to_have_text(["Window: Input should be less than or equal to 60"])
    expect(form.get_by_label("Window")).to_have_attribute("aria-invalid", "true")
    form.get_by_label("Window").fill("16")
    form.get_by_label("From", exact=True).fill("2018-12-31")
    form.get_by_label("To", exact=True).fill("2017-01-01")
    start.click()
    expect(reasons).to_have_text(["end 2017-01-01 must be after start 2018-12-31"])
    expect(form.get_by_label("Window")).not_to_have_attribute("aria-invalid", "true")
    expect(p.locator("#jobs tbody tr")).to_have_count(0)
    expect(p.locator("#jobs-empty")).to_have_text("No job yet.")

    # A tiny training of the classifier alone, set and started by keyboard.
    form.get_by_label("From", exact=True).fill("")
    form.get_by_label("To", exact=True).fill("")
    form.get_by_label("forecaster").focus()
    p.keyboard.press("Space")
    expect(form.get_by_label("forecaster")).not_to_be_checked()
    _type(form.get_by_label("Horizon"), "3")
    _type(form.get_by_label("Epochs"), "1")
    _type(form.get_by_label("Folds"), "1")
    p.keyboard.press("Enter")
    expect(p.locator("#model-job-outcome")).to_have_text("Started training job #1.")
    expect(reasons).to_have_count(0)
    trained = _finished(p, 1, "completed", TRAINED_S)
    expect(trained).to_contain_text("training")

    _open(p, "Show training job 1's result")
    expect(p.locator("#model-job-title")).to_have_text("Training job #1")
    model = p.locator("#trained-pattern_classifier")
    expect(model).to_have_attribute("data-version", "1")
    expect(model).to_have_attribute("data-status", "active")
    expect(model.locator("h3")).to_have_text("pattern_classifier v1 active")
    expect(model.locator(".decision")).to_have_text(
        re.compile(r"^first active version \(log_loss \d")
    )
    expect(model.locator('.key-metric[data-metric="log_loss"]')).to_contain_text(
        re.compile(r"log loss \d\.\d+ vs prior \d\.\d+")
    )
    expect(p.locator("#trained-forecaster")).to_have_count(0)  # not asked for
    shoot(p, "model-jobs-training")

    # The Models view serves what the job registered.
    _open(p, "pattern_classifier in Models", role="link")
    served = p.locator('.model[data-model="pattern_classifier"]')
    expect(served.locator(".model-standing")).to_have_attribute("data-active", "1")
    expect(served.locator('tr[data-version="1"]')).to_have_attribute("data-status", "active")

    # A scan and a suggestion job (the classifier now active), and a training too short to run.
    p.get_by_role("link", name="Jobs", exact=True).click()
    expect(form).to_be_visible()
    form.get_by_role("radio", name="Training").focus()
    p.keyboard.press("ArrowDown")
    expect(form.get_by_role("radio", name="Pattern scan")).to_be_checked()
    expect(form.get_by_label("Epochs")).to_be_hidden()
    form.get_by_label("Symbols").fill("AAPL, MSFT")
    form.get_by_label("From", exact=True).fill("2019-01-01")
    form.get_by_label("From", exact=True).press("Enter")
    expect(p.locator("#model-job-outcome")).to_have_text("Started pattern scan job #2.")

    form.get_by_role("radio", name="Pattern scan").focus()
    p.keyboard.press("ArrowDown")
    expect(form.get_by_role("radio", name="Suggestion")).to_be_checked()
    form.get_by_label("Symbols").fill("AAPL, MSFT, XOM")
    form.get_by_label("Symbols").press("Enter")
    expect(p.locator("#model-job-outcome")).to_have_text("Started suggestion job #3.")

    form.get_by_role("radio", name="Suggestion").focus()
    p.keyboard.press("ArrowDown")
    expect(form.get_by_role("radio", name="Sentiment")).to_be_checked()
    p.keyboard.press("ArrowDown")  # wraps round to Training
    expect(form.get_by_role("radio", name="Training")).to_be_checked()
    form.get_by_label("Symbols").fill("AAPL")
    form.get_by_label("From", exact=True).fill("2019-06-01")
    form.get_by_label("From", exact=True).press("Enter")
    expect(p.locator("#model-job-outcome")).to_have_text("Started training job #4.")

    _finished(p, 2, "completed", FLOW_S)
    _open(p, "Show pattern scan job 2's result")
    expect(p.locator("#model-job-title")).to_have_text("Pattern scan job #2")
    expect(p.locator(".scan-facts")).to_contain_text("classes by pattern_classifier v1")
    kinds = p.locator("#scan-by-kind tbody tr")
    expect(kinds.first).to_be_visible()
    expect(kinds.first.locator("td")).to_have_text(
        [
            re.compile(r"^\d+$"),
            re.compile(r"^\d+$"),
            re.compile(r"^\d+$"),
            re.compile(r"^(\d+\.\d%|—)$"),
            re.compile(r"^(-?\d+\.\d\d%|—)$"),
        ]
    )
    expect(p.locator("#scan-by-class tbody tr").first).to_be_visible()
    shoot(p, "model-jobs-scan")

    _finished(p, 3, "completed", FLOW_S)
    _open(p, "Show suggestion job 3's result")
    expect(p.locator("#model-job-title")).to_have_text("Suggestion job #3")
    expect(p.locator("#suggestion-list tbody th")).to_have_text(["AAPL", "MSFT", "XOM"])
    expect(p.locator("#suggestion-list tbody tr").first).to_have_attribute(
        "data-direction", re.compile(r"^(buy|sell|hold)$")
    )

    _finished(p, 4, "failed", TRAINED_S)
    _open(p, "Show training job 4's result")
    expect(p.locator("#model-job-error")).to_contain_text(re.compile(r"^Failed: .*too few"))

    documents = [u for u in page.requests if urlsplit(u).path == "/"]
    assert len(documents) == 1  # followed live: the page was never loaded again
    for width, height in ((1280, 800), (390, 844)):
        p.set_viewport_size({"width": width, "height": height})
        assert p.evaluate("document.documentElement.scrollWidth") <= width
    # The two refused forms' 422s are logged by the browser as failed loads, nothing else.
    assert [e for e in page.own_errors() if "status of 422" not in e] == []
    assert page.only_asked(server)


def _type(field: Locator, text: str) -> None:
    """Replace a field's value by keyboard: select it all, type over it."""
    field.focus()
    field.press("ControlOrMeta+a")
    field.press_sequentially(text)


def _finished(p: Page, job_id: int, status: str, timeout_ms: int) -> Locator:
    """The job's row once it has `status`, moved there live by the WebSocket."""
    row = p.locator(f'#jobs tbody tr[data-id="{job_id}"]')
    expect(row).to_have_attribute("data-status", status, timeout=timeout_ms)
    return row


def _open(p: Page, name: str, role: Literal["button", "link"] = "button") -> None:
    """Activate a button or link by keyboard."""
    target = p.get_by_role(role, name=name)
    target.focus()
    target.press("Enter")
