"""The dashboard's Portfolio view in a real browser (tests/browser_support.py): a bracket
trade approved over the API shows as a position whose P&L moves with live prices, with
its exits under the entry; an admin halts trading from the page, the next approval is
refused (and shown refused), and resuming lets a trade through again.

One scenario walks the whole view (the suite's time is short): the app on the sample's
stored bars, the paper broker filling at the last close, the simulator streaming AAPL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import expect
from sqlalchemy import func, select

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token, revoke_token
from models.accounts import AccountConfig
from models.enums import Role, Side
from models.intents import ManualTrade
from models.trading import Order
from realtime.runtime import Runtime
from tasks.execution.manual import place_manual_trades
from tests.browser_support import Watched, dashboard_settings, shoot
from tests.live_server import serve_in_thread

BRACKET = ManualTrade(
    symbol="AAPL", side=Side.BUY, qty=Decimal(5), take_profit=Decimal(400), stop_loss=Decimal(250)
)
ONE_MORE = ManualTrade(symbol="AAPL", side=Side.BUY, qty=Decimal(1))


@dataclass
class Desk:
    """The served app, its tokens by user (a trader and two admins), its runtime."""

    url: str
    app: FastAPI
    tokens: dict[str, tuple[str, int]]  # user -> (secret, id)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def queue(self, *trades: ManualTrade, source: str) -> list[int]:
        """Trades asked for and left waiting for approval, as chat or a pitch leaves them."""
        asking = place_manual_trades(
            self.runtime.sessions, self.runtime.settings, trades, source=source, execute=False
        )
        # Playwright's sync API keeps an event loop on this thread: run beside it.
        with ThreadPoolExecutor(1) as thread:
            outcomes = thread.submit(asyncio.run, asking).result()
        assert [o.status for o in outcomes] == ["pending_approval"] * len(trades)
        return [o.intent_id for o in outcomes if o.intent_id is not None]

    def execute(self, ids: list[int]) -> httpx.Response:
        return httpx.post(
            f"{self.url}/api/trades/execute",
            json={"intent_ids": ids},
            headers={"Authorization": f"Bearer {self.secret('trader')}"},
        )

    def secret(self, user: str) -> str:
        return self.tokens[user][0]

    def revoke(self, user: str) -> None:
        with unit_of_work(self.runtime.sessions) as session:
            revoke_token(session, self.tokens[user][1])

    def orders(self) -> int:
        with self.runtime.sessions() as session:
            return session.scalar(select(func.count()).select_from(Order)) or 0


@pytest.fixture
def desk(sample_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Desk]:
    monkeypatch.chdir(tmp_path)  # the paper account's state file
    engine = make_engine(sample_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        tokens = {}
        for user, role in (("trader", Role.TRADER), ("admin", Role.ADMIN), ("admin2", Role.ADMIN)):
            issued = issue_token(session, user, role, name=f"test {user}")
            tokens[user] = (issued.secret, issued.id)
    engine.dispose()
    settings = dashboard_settings(
        sample_db_url,
        realtime_symbols=["AAPL"],
        book_feed="none",
        accounts=[AccountConfig(name="paper"), AccountConfig(name="other")],  # "paper" trades
    )
    app = create_app(settings)
    with serve_in_thread(app) as url:
        yield Desk(url, app, tokens)


def test_a_bracket_trade_shows_live_then_an_admin_halts_and_resumes_from_the_page(
    desk: Desk, page: Watched
) -> None:
    bracket, held_back = desk.queue(BRACKET, ONE_MORE, source="dashboard-1")
    view = page.page
    view.goto(desk.url + "/#portfolio")

    # The anonymous local reader is a viewer: the switch's state, its buttons disabled.
    state = view.locator("#kill-state")
    expect(state).to_contain_text("Trading: no halt", timeout=10_000)
    expect(view.locator("#kill-halt")).to_be_disabled()
    expect(view.locator("#kill-resume")).to_be_disabled()
    expect(view.locator("#kill-hint")).to_contain_text("Sign in as an admin")
    expect(view.locator("#positions-empty")).to_be_visible()

    sent = desk.execute([bracket])
    assert sent.status_code == 200, sent.text
    assert [o["status"] for o in sent.json()] == ["filled"]

    # The position, marked live: its P&L moves with the streamed price.
    position = view.locator('#positions tbody tr[data-symbol="AAPL"]')
    expect(position.locator(".qty")).to_have_text("5", timeout=5_000)
    pnl = position.locator(".pnl")
    expect(pnl).not_to_have_text("")
    expect(pnl).not_to_have_text(pnl.inner_text(), timeout=5_000)
    expect(view.locator("#feed-prices")).to_have_attribute("data-state", "live")
    # The entry, filled, with its two exits still working under it.
    rows = view.locator("#open-orders tbody tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).get_attribute("data-leg") for i in range(3)] == [
        "entry",
        "stop_loss",
        "take_profit",
    ]
    expect(rows.nth(1).locator("th")).to_have_text("↳ stop-loss")
    expect(rows.nth(1).locator(".price")).to_have_text("250.00")
    expect(view.locator("#fills tbody tr")).to_have_count(1)
    expect(view.locator("#summary-equity")).not_to_have_text("—")
    expect(view.locator("#equity-note")).to_contain_text("snapshots")
    assert view.locator("#equity-chart canvas").count() > 0
    # Two accounts: a picker; the other account holds nothing.
    view.select_option("#portfolio-account", "other")
    expect(view.locator("#positions-empty")).to_be_visible()
    expect(view.locator("#fills-empty")).to_be_visible()
    view.select_option("#portfolio-account", "")
    expect(position.locator(".qty")).to_have_text("5")

    # An admin signs in on the page; a halt needs a reason, then a confirmation.
    view.click("#sign-in")
    view.fill("#token", desk.secret("admin"))
    view.click("#token-ok")
    expect(view.locator("#who")).to_have_text("admin (admin)")
    halt = view.locator("#kill-halt")
    expect(halt).to_be_enabled()
    halt.click()
    expect(view.locator("#kill-error")).to_contain_text("Say why")
    expect(view.locator("#kill-confirm-step")).to_be_hidden()
    view.locator("#kill-reason").fill("drill: market data looks wrong")
    view.locator("#kill-reason").press("Enter")  # by keyboard: the form's own submit
    confirm = view.locator("#kill-confirm")
    expect(confirm).to_be_focused()
    expect(view.locator("#kill-confirm-text")).to_contain_text("every account")
    view.keyboard.press("Enter")
    expect(state).to_contain_text("Halted on all accounts by admin,")
    expect(state).to_contain_text("drill: market data looks wrong")
    expect(view.locator("#kill-switch")).to_have_attribute("data-halted", "true")
    expect(view.locator('#kill-accounts li[data-halted="true"]')).to_have_count(2)

    # Approving the waiting trade now is answered, refused, and sends nothing.
    before = desk.orders()
    refused = desk.execute([held_back])
    assert refused.status_code == 200, refused.text
    [outcome] = refused.json()
    assert outcome["status"] == "risk_rejected"
    assert "halted" in outcome["reason"]
    assert "drill: market data looks wrong" in outcome["reason"]
    assert desk.orders() == before
    refusal = view.locator(f'#refused tbody tr[data-intent-id="{held_back}"]')
    expect(refusal.locator(".reason")).to_contain_text("drill: market data looks wrong")
    expect(refusal).to_contain_text("kill_switch")

    # The admin's token is revoked meanwhile: the resume is refused with the server's
    # reason beside the switch, and the poll says its refresh failed.
    desk.revoke("admin")
    view.click("#kill-resume")
    view.click("#kill-confirm")
    expect(view.locator("#kill-error")).to_contain_text("Resume refused: ")
    expect(view.locator("#kill-error")).to_contain_text("revoked")
    expect(view.locator("#portfolio-refresh")).to_contain_text("Last refresh failed")
    expect(view.locator("#kill-switch")).to_have_attribute("data-halted", "true")

    # Another admin resumes from the page; a trade goes through again.
    view.click("#sign-in")  # signs out
    view.click("#sign-in")
    view.fill("#token", desk.secret("admin2"))
    view.click("#token-ok")
    expect(view.locator("#who")).to_have_text("admin2 (admin)")
    view.click("#kill-resume")
    view.click("#kill-confirm")
    expect(state).to_contain_text("Trading: no halt (last resumed by admin2")
    [again] = desk.queue(ONE_MORE, source="dashboard-2")
    sent = desk.execute([again])
    assert [o["status"] for o in sent.json()] == ["filled"], sent.text
    assert desk.orders() == before + 1
    expect(view.locator("#fills tbody tr")).to_have_count(2)
    expect(position.locator(".qty")).to_have_text("6")
    expect(view.locator("#portfolio-refresh")).to_contain_text("Updated")

    # A phone's width: the page itself never scrolls sideways (tables scroll inside).
    view.set_viewport_size({"width": 390, "height": 844})
    assert view.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(view, "portfolio")
    # The revoked token's refusals are the browser's notes of 401s, nothing of the page's.
    assert [e for e in page.own_errors() if "401" not in e] == [], page.errors
    assert page.only_asked(desk.url)
