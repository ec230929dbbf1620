"""The dashboard's Council view in a real browser (tests/browser_support.py): a trader starts
this week's council from the page, watches its stages move over the WebSocket, rejects one
decision and approves the rest, and sees the orders they became, as tests/test_api_week.py
does over HTTP. The job runs the real flow in a worker process of the server
(JOBS_RUNNER=process) against the test's Prefect server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from prefect.settings import PREFECT_API_URL

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from tests.browser_support import Watched, dashboard_settings, shoot
from tests.live_server import serve_in_thread

# The week and universe of tests/test_api_week.py: the offline council proposes buys and
# sells there, and the paper account refuses the sells (no shorting).
UNIVERSE = ["AAPL", "AMZN", "BAC", "GS", "JNJ", "JPM", "MCD", "MSFT", "NVDA", "XOM"]
AS_OF = "2019-06-03"
COUNCIL_S = 60_000  # ms: a council sits in ~8 s here; the bound is for a busy machine
# What the browser itself logs for an answered error: before the first council there is
# no run (404), and the refused start below is a 422. Nothing else may be logged.
EXPECTED_LOADS = ("status of 404", "status of 422")


@dataclass(frozen=True)
class Server:
    url: str
    trader_token: str


@pytest.fixture
def server(
    sample_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Server]:
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sample_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        token = issue_token(session, "trader-user", Role.TRADER, name="browser").secret
    engine.dispose()
    settings = dashboard_settings(
        sample_db_url,
        jobs_runner="process",
        job_poll_interval_ms=100,
        book_feed="none",
        paper_state_dir=tmp_path / "paper",
        jobs_log_dir=tmp_path / "jobs",
        log_level="WARNING",
    )
    with serve_in_thread(create_app(settings)) as url:
        yield Server(url, token)


def test_a_trader_sits_the_council_from_the_page_and_approves_all_but_one(
    server: Server, page: Watched
) -> None:
    p = page.page
    loads: list[str] = []
    p.on("load", lambda _: loads.append(p.url))
    p.goto(server.url + "/#council")
    start = p.get_by_role("button", name="Start council")
    expect(p.locator("#council-start-note")).to_have_text(re.compile("Sign in as a trader"))
    expect(start).to_be_disabled()  # the anonymous local reader is a viewer
    expect(p.locator("#council-run")).to_contain_text("No council has sat yet")

    p.click("#sign-in")
    p.fill("#token", server.trader_token)
    p.keyboard.press("Enter")
    expect(p.locator("#who")).to_have_text("trader-user (trader)")
    expect(start).to_be_enabled()

    # A refused start says the server's reason beside the button, and starts nothing.
    p.fill("#council-as-of", "1990-01-02")
    start.click()
    note = p.locator("#council-start-note")
    expect(note).to_have_class("error")
    expect(note).to_contain_text("as_of")

    # By keyboard: Enter in the universe field submits the form.
    p.fill("#council-as-of", AS_OF)
    p.fill("#council-universe", " ".join(UNIVERSE).lower())
    p.focus("#council-universe")
    p.keyboard.press("Enter")
    expect(note).to_have_text(re.compile(r"Started job #\d+\."))
    expect(p.locator("#feed-jobs")).to_have_attribute("data-state", "live")

    status = p.locator("#council-status")
    expect(status).to_contain_text("Waiting for approval", timeout=COUNCIL_S)
    for done in ("research", "pitches", "review", "chairman"):
        expect(p.locator(f'#council-stages [data-stage="{done}"]')).to_have_attribute(
            "data-state", "done"
        )
    expect(p.locator('#council-stages [data-stage="approval"]')).to_have_attribute(
        "data-state", "waiting"
    )
    expect(p.locator('#council-stages [data-stage="execution"]')).to_have_attribute(
        "data-state", "not reached"
    )
    expect(p.locator("#council-research-table tbody tr").first).to_be_visible()
    expect(p.locator("#council-pitches-table tbody tr").first).to_be_visible()

    proposed = p.locator("#council-decisions tbody tr[data-status='proposed']")
    count = proposed.count()
    assert count >= 2, "the offline council proposes several trades on this week"
    ids = [int(proposed.nth(i).get_attribute("data-id") or 0) for i in range(count)]
    first = proposed.first
    symbol = first.get_attribute("data-symbol")
    action = first.locator("td").first.inner_text()
    choice = p.get_by_role("radiogroup", name=f"Decision on {symbol} {action}")
    choice.get_by_role("radio", name="Reject").check()
    send = p.locator("#council-send")
    expect(send).to_have_text(f"Send approval ({count - 1} approve, 1 reject)")
    p.fill("#council-approve-note", "one too hot")
    send.focus()
    p.keyboard.press("Enter")
    expect(p.locator("#council-approve-answer")).to_contain_text(
        f"Sent by trader-user: {count - 1} approved, 1 rejected"
    )

    expect(status).to_contain_text("completed", timeout=COUNCIL_S)
    expect(p.locator("#council-run")).to_contain_text(": completed")  # read after the end
    expect(p.locator('#council-stages [data-stage="execution"]')).to_have_attribute(
        "data-state", "done"
    )
    rows = p.locator("#council-decisions tbody tr[data-id]")
    expect(rows.and_(p.locator(f'[data-id="{ids[0]}"]'))).to_have_attribute(
        "data-status", "rejected"
    )
    for other in ids[1:]:
        expect(rows.and_(p.locator(f'[data-id="{other}"]'))).to_have_attribute(
            "data-status", "approved"
        )
    expect(p.locator(f"#decision-{ids[0]} .decision-status")).to_have_text(
        "rejected by trader-user: one too hot"
    )
    intents = p.locator(".council-exec li.intent")
    expect(intents.first).to_be_visible()
    for i in range(intents.count()):
        intent = intents.nth(i)
        if intent.get_attribute("data-status") == "risk_rejected":  # a sell, shorting off
            expect(intent.locator(".error")).to_contain_text("shorting not allowed")
        else:
            expect(intent.locator("li.order").first).to_be_visible()
    shown_orders = {int(o.get_attribute("data-order") or 0) for o in p.locator("li.order").all()}
    assert shown_orders, "approved decisions became orders on the page"

    headers = {"Authorization": f"Bearer {server.trader_token}"}
    current = httpx.get(server.url + "/api/council/current", headers=headers).json()
    orders = httpx.get(server.url + "/api/orders", headers=headers).json()["items"]
    assert {o["id"] for o in orders if o["decision_id"] in ids[1:]} == shown_orders, (
        orders,
        p.locator("#council-decisions").inner_text(),
    )
    assert not [o for o in orders if o["decision_id"] == ids[0]]
    link = p.get_by_role("link", name="Open the flow run in the Prefect UI")
    flow_run = current["run"]["flow_run_id"]
    ui = str(PREFECT_API_URL.value()).removesuffix("/api")  # the harness's server
    expect(link).to_have_attribute("href", f"{ui}/runs/flow-run/{flow_run}")
    costs = p.locator("#council-costs-table tbody tr")
    assert [costs.nth(i).get_attribute("data-stage") for i in range(costs.count())] == [
        "research",
        "pitch",
        "review",
        "chairman",
    ]
    assert loads == [server.url + "/#council"], "the page moved without a reload"

    p.set_viewport_size({"width": 390, "height": 844})
    assert p.evaluate("document.documentElement.scrollWidth <= innerWidth")  # no page scroll
    shoot(p, "council")

    # The same orders in the Portfolio view: the entries filled (fills), their exits working.
    p.set_viewport_size({"width": 1280, "height": 800})
    p.get_by_role("link", name="Portfolio").click()
    placed = {o["id"]: o for o in orders if o["id"] in shown_orders}
    working = [i for i, o in placed.items() if o["status"] in {"new", "submitted", "accepted"}]
    assert working, placed  # each filled entry's take-profit and stop-loss
    for order_id in working:
        expect(p.locator(f'#open-orders tr[data-order-id="{order_id}"]')).to_be_visible()
    symbols = {o["symbol"] for o in placed.values() if o["status"] == "filled"}
    assert symbols, placed
    for symbol in symbols:
        expect(p.locator(f'#positions tbody tr[data-symbol="{symbol}"]')).to_be_visible()
        expect(p.locator(f'#fills tr[data-symbol="{symbol}"]').first).to_be_visible()
    unexpected = [e for e in page.own_errors() if not any(s in e for s in EXPECTED_LOADS)]
    assert unexpected == [], page.errors
    assert page.only_asked(server.url)
