"""The dashboard's Chat view in a real browser (tests/browser_support.py): a trader asks the
assistant (a priced model behind the fake OpenAI endpoint, streaming) to buy, sees the
answer stream in with its trade card, and approves the queued trade from the page."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Route, expect

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from tests.browser_support import Watched, dashboard_settings, shoot
from tests.fake_openai import FakeOpenAI, Reply, fake_openai
from tests.live_server import serve_in_thread

PRICED = "openai/gpt-4o-mini"
ANSWER = 'Buying 3 "MSFT" with a bracket, as asked.\nIt waits for your approval.'
TRADE = {
    "symbol": "MSFT",
    "side": "buy",
    "qty": 3,
    "take_profit": "200.00",
    "stop_loss": "100.00",
    "reason": "the user asked for it",
}


@dataclass
class ChatServer:
    url: str
    model: FakeOpenAI
    token: str


@pytest.fixture
def chat_server(
    sample_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ChatServer]:
    """The realtime app with a priced model behind it; chat trades wait for approval."""
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sample_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        token = issue_token(session, "trader-user", Role.TRADER, name="test trader").secret
    engine.dispose()
    with fake_openai() as model:
        settings = dashboard_settings(
            sample_db_url,
            realtime_symbols=["AAPL", "MSFT"],
            chat_model=PRICED,
            llm_api_base=model.base_url,
            llm_api_key="test-key",
            chat_execute=False,
            api_llm_rate_per_minute=1,  # the second message is refused: a 429 to show
            paper_state_dir=tmp_path / "paper",
        )
        with serve_in_thread(create_app(settings)) as url:
            yield ChatServer(url, model, token)


def test_a_trader_asks_to_buy_sees_the_answer_stream_and_approves_the_trade_once(
    chat_server: ChatServer, page: Watched
) -> None:
    server, browser = chat_server, page.page
    server.model.enqueue(
        Reply(json.dumps({"message": ANSWER, "trades": [TRADE], "watchlist_changes": []}))
    )
    browser.goto(server.url + "/#chat")
    # Anonymous (a viewer): nothing to click that it may not do, and it says why.
    expect(browser.locator("#chat-hint")).to_be_visible()
    expect(browser.locator("#chat-new")).to_be_disabled()
    expect(browser.locator("#feed-orders")).to_have_attribute("data-state", "live")

    browser.click("#sign-in")
    browser.fill("#token", server.token)
    browser.press("#token", "Enter")
    expect(browser.locator("#who")).to_have_text("trader-user (trader)")
    new = browser.locator("#chat-new")
    expect(new).to_be_enabled()
    new.focus()
    browser.keyboard.press("Enter")  # by keyboard, as by mouse
    expect(browser.locator("#chat-list button[aria-current=true]")).to_have_count(1)
    message = browser.locator("#chat-input")
    expect(message).to_be_focused()
    message.type("buy 3 MSFT")
    message.press("Shift+Enter")  # a new line, not sent
    message.type("with a bracket")
    expect(message).to_have_value("buy 3 MSFT\nwith a bracket")
    message.press("Enter")

    answer = browser.locator("#chat-thread .msg-assistant")
    expect(answer).to_have_attribute("data-state", "done", timeout=15_000)
    expect(answer.locator(".msg-text")).to_have_text(ANSWER)
    assert int(answer.get_attribute("data-pieces") or 0) > 2  # it came in as it was written
    expect(browser.locator("#chat-thread .msg-user .msg-text")).to_have_text(
        "buy 3 MSFT\nwith a bracket"
    )
    card = answer.locator(".trade-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("BUY")
    expect(card).to_contain_text("3 MSFT")
    expect(card).to_contain_text("200.00")
    expect(card).to_contain_text("100.00")
    expect(card.locator(".trade-status")).to_have_text("waiting for approval")
    intent = int(card.get_attribute("data-intent") or 0)
    queued = browser.locator(f"#chat-queue li[data-intent='{intent}']")
    expect(queued).to_contain_text("3 MSFT")
    shoot(browser, "chat")
    browser.set_viewport_size({"width": 390, "height": 844})
    assert browser.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways page
    browser.set_viewport_size({"width": 1280, "height": 800})

    card.get_by_role("button", name="Approve buy 3 MSFT").dblclick()  # a double click
    expect(card.locator(".trade-status")).to_contain_text("filled at", timeout=10_000)
    expect(browser.locator("#chat-queue li")).to_have_count(0)
    expect(card.get_by_role("button", name="Approve buy 3 MSFT")).to_be_hidden()

    orders = httpx.get(
        f"{server.url}/api/orders",
        headers={"Authorization": f"Bearer {server.token}"},
    ).json()["items"]
    entries = [o for o in orders if o["intent_id"] == intent and o["leg"] == "entry"]
    assert [(o["symbol"], o["status"]) for o in entries] == [("MSFT", "filled")]  # sent once
    assert len(server.model.requests) == 1

    browser.reload()  # what the page shows is what was stored
    card = browser.locator("#chat-thread .msg-assistant .trade-card")
    expect(card.locator(".trade-status")).to_contain_text("filled at")

    _a_refused_message_is_said_beside_the_box(page)
    _a_failed_or_cut_answer_keeps_what_arrived_and_says_so(page)
    assert [e for e in page.own_errors() if "429" not in e] == []  # the browser's note of it
    assert page.only_asked(server.url)


def _a_refused_message_is_said_beside_the_box(page: Watched) -> None:
    message = page.page.locator("#chat-input")
    message.fill("how is my portfolio?")
    message.press("Enter")  # over the token's one LLM request a minute: a 429
    refused = page.page.locator("#chat-send-error")
    expect(refused).to_contain_text("Not sent:")
    assert "\n" not in refused.inner_text()
    assert "Traceback" not in refused.inner_text()
    expect(message).to_have_value("how is my portfolio?")  # kept, to send again
    expect(page.page.locator("#chat-thread .msg")).to_have_count(2)  # nothing added
    assert all("429" in e for e in page.own_errors()), page.own_errors()


def _a_failed_or_cut_answer_keeps_what_arrived_and_says_so(page: Watched) -> None:
    """The server's failures mid-answer, played at the browser's edge: an `error` frame
    after some text, then a stream that ends with no `message`."""
    stream = "**/api/conversations/*/message/stream"
    head = "event: token\r\ndata: Half an\r\n\r\nevent: token\r\ndata:  answer\r\n\r\n"
    failed = 'event: error\r\ndata: {"detail": "the database went away"}\r\n\r\n'
    for body, note in (
        (head + failed, "The answer failed: the database went away"),
        (head, "stream was cut"),
    ):
        page.page.route(stream, _answering(body))
        page.page.locator("#chat-input").fill("and now?")
        page.page.locator("#chat-input").press("Enter")
        answer = page.page.locator("#chat-thread .msg-assistant").last
        expect(answer.locator(".error")).to_contain_text(note)
        expect(answer.locator(".msg-text")).to_have_text("Half an answer")
        page.page.unroute(stream)
    expect(page.page.locator("#chat-send-error")).to_be_hidden()


def _answering(body: str) -> Callable[[Route], None]:
    def fulfil(route: Route) -> None:
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    return fulfil
