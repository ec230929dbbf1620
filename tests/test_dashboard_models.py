"""The dashboard's Models and Suggestions views in a real browser (tests/browser_support.py),
against the realtime app on a real uvicorn server and both databases.

Models: versions registered and decided through the registry (read again when a training
job ends) show which one serves, a challenger, a refused one with the decision's words,
the figures beside their baselines and each version's card (a version without one says
why). Suggestions: the stored ones first, then one published on the app's bus arrives
without a reload; a partial one says why on its row, the same suggestion stored and live
is drawn once, a `suggestion` job's past close appears when the job ends, and the filters
narrow the list. The app's bus is a private Redis here: the test publishes on the very
streams the strategy engine and the flows write to, from its own client, as another
process would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries import model_registry as registry
from db.queries.suggestions import insert_suggestions
from models.bus import SUGGESTIONS_GLOBAL, BusMessage
from models.enums import JobType, RunStatus
from models.jobs import JobUpdate
from models.ops import Job
from models.suggestions import SuggestionOut
from realtime.strategy.engine import MESSAGE_TYPE
from services.bus.job_updates import announce_job
from services.bus.redis_streams import RedisStreamsBus
from tests.browser_support import SIZES, Watched, dashboard_settings, shoot
from tests.live_server import serve_in_thread
from tests.private_redis import PrivateRedis

FROM, TO = datetime(2015, 1, 2, tzinfo=UTC), datetime(2019, 12, 31, tzinfo=UTC)
NO_MODEL = "signals only: no active model (a `training` job makes one)"
PAUSED = "signals only: models paused after 3 failures in a row (retry in 30 s)"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
CARD = """# forecaster v1: active

**Decision:** first active version (mase 0.91)

## Out of sample (walk-forward, weighted by test size)

| metric | model | naive | seasonal naive |
|---|---:|---:|---:|
| mase | 0.91 | 1 | 0.97 |

## Known limits

* Closes are raw; data hash `cdcdcdcd`
* <img src=x onerror=alert(1)> stays text
"""


@pytest.fixture
def server(migrated_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    settings = dashboard_settings(migrated_db_url, job_poll_interval_ms=100)
    with serve_in_thread(create_app(settings)) as url:
        yield url


def _train_models(db_url: str) -> None:
    """What a `training` job leaves: forecaster v1 active (with a card), v2 challenger, v3
    refused (no card); the pattern classifier one candidate, so no version of it serves;
    and the job, completed."""
    engine = make_engine(db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        session.add(Job(type=JobType.TRAINING, params={}, status=RunStatus.COMPLETED))
        for mase in (0.91, 0.95, 1.2):
            row = registry.register(
                session, name="forecaster", kind="forecaster", onnx_path="f.onnx",
                onnx_sha256="ab" * 32, data_hash="cd" * 32, data_from=FROM, data_to=TO,
                params={"window": 32},
                metrics={"mase": mase, "naive_mase": 1.0, "seasonal_naive_mase": 0.97,
                         "directional_accuracy": 0.54},
            )  # fmt: skip
            row.card = CARD if row.version == 1 else None
        registry.promote(session, "forecaster", 1, metric="mase")
        registry.promote(session, "forecaster", 2, metric="mase", ab=True)
        registry.promote(session, "forecaster", 3, metric="mase")
        registry.register(
            session, name="pattern_classifier", kind="pattern_classifier", onnx_path="c.onnx",
            onnx_sha256="ef" * 32, data_hash="cd" * 32, data_from=FROM, data_to=TO, params={},
            metrics={"log_loss": 1.02, "prior_log_loss": 1.05, "accuracy": 0.45,
                     "prior_accuracy": 0.4, "ece": 0.03},
        )  # fmt: skip
    engine.dispose()


def test_models_show_the_serving_version_its_challenger_a_refusal_and_the_cards(
    migrated_db_url: str, server: str, page: Watched
) -> None:
    view = page.page
    view.goto(server + "/#models")
    empty = view.locator("#models-empty")
    expect(empty).to_contain_text("No model yet: start a training job from Jobs", timeout=10_000)
    expect(empty.get_by_role("link", name="Jobs")).to_have_attribute("href", "#jobs")

    # A training job ends: the view reads the registry again by itself (`job_updates`).
    expect(view.locator("#feed-jobs")).to_have_attribute("data-state", "live")
    _train_models(migrated_db_url)
    forecaster = view.locator('.model[data-model="forecaster"]')
    expect(forecaster.locator(".active-version")).to_have_text("v1", timeout=10_000)
    expect(forecaster.locator(".challengers")).to_contain_text("v2")
    rows = forecaster.locator("tbody tr")
    assert [rows.nth(i).get_attribute("data-status") for i in range(3)] == [
        "refused",
        "challenger",
        "active",
    ]
    refused = forecaster.locator('tr[data-version="3"]')
    expect(refused.locator(".decision")).to_contain_text(
        "not better out of sample (lower wins): mase 1.2 against the active v1's 0.91"
    )
    mase = forecaster.locator('tr[data-version="1"] li[data-metric="mase"]')
    expect(mase).to_contain_text("MASE 0.910")
    expect(mase).to_contain_text("vs naive 1.00, seasonal naive 0.970")
    expect(mase).to_have_attribute("data-beats", "true")
    expect(refused.locator('li[data-metric="mase"]')).to_have_attribute("data-beats", "false")
    expect(forecaster.locator('tr[data-version="1"] .data-range')).to_have_text(
        "2015-01-02 .. 2019-12-31"
    )
    classifier = view.locator('.model[data-model="pattern_classifier"]')
    expect(classifier.locator(".no-active")).to_contain_text("No active version")
    expect(classifier.locator('li[data-metric="log_loss"]')).to_contain_text(
        "log loss 1.02 vs prior 1.05"
    )
    expect(classifier.locator('li[data-metric="ece"]')).to_contain_text("ECE 0.0300")

    # v1's card, opened by keyboard: its heading, its table, and markup in it left as text.
    opener = view.get_by_role("button", name="Show forecaster v1's model card")
    opener.focus()
    view.keyboard.press("Enter")
    card = forecaster.locator("article.model-card")
    expect(card.locator("h4")).to_have_text("forecaster v1: active", timeout=5_000)
    expect(card.locator("table td").first).to_have_text("mase")
    expect(card.locator("strong").first).to_have_text("Decision:")
    expect(card).to_contain_text("<img src=x onerror=alert(1)> stays text")
    expect(card.locator("img")).to_have_count(0)
    expect(opener).to_have_attribute("aria-pressed", "true")
    shoot(view, "models")
    assert _sideways(view) == {}

    # v3 has no card: it says so, and nothing is asked of the server for it.
    v3 = forecaster.locator('tr[data-version="3"]')
    expect(v3.locator(".no-card")).to_have_text("no card")
    expect(view.get_by_role("button", name="Show forecaster v3's model card")).to_have_count(0)

    assert page.errors == []
    assert page.only_asked(server)


def _sideways(view: Page) -> dict[str, int]:
    """How far the page scrolls sideways at each size, where it does (a wide table scrolls
    in its own box, never the page)."""
    scrolled = {}
    for size, (width, height) in SIZES.items():
        view.set_viewport_size({"width": width, "height": height})
        view.wait_for_timeout(100)  # a layout pass at the new width
        if (extra := view.evaluate(OVERFLOW)) > 0:
            scrolled[size] = extra
    view.set_viewport_size({"width": 1280, "height": 800})
    return scrolled


# --- suggestions ---------------------------------------------------------------------------


@dataclass
class Live:
    url: str
    redis_url: str
    db_url: str

    def store(self, *suggestions: dict[str, Any]) -> None:
        """Rows in the suggestions table, as the strategy engine writes them."""
        engine = make_engine(self.db_url)
        with unit_of_work(make_session_factory(engine)) as session:
            insert_suggestions(session, list(suggestions))
        engine.dispose()

    def publish(self, *suggestions: dict[str, Any]) -> None:
        """Each on the app's bus (`suggestions:global`), as the strategy engine publishes it."""

        async def publish(bus: RedisStreamsBus) -> None:
            for suggestion in suggestions:
                data = SuggestionOut.model_validate(suggestion).model_dump(
                    mode="json", exclude={"id"}
                )
                await bus.publish(SUGGESTIONS_GLOBAL, BusMessage(type=MESSAGE_TYPE, data=data))

        self._on_bus(publish)

    def announce(self, update: JobUpdate) -> None:
        """A job's move on the app's bus (`jobs:updates`), as a flow announces it."""

        async def announce(bus: RedisStreamsBus) -> None:
            await announce_job(bus, update)

        self._on_bus(announce)

    def _on_bus(self, use: Callable[[RedisStreamsBus], Awaitable[None]]) -> None:
        async def run() -> None:
            bus = RedisStreamsBus(self.redis_url)
            try:
                await use(bus)
            finally:
                await bus.close()

        # Playwright's sync API keeps an event loop on this thread: run beside it.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, run()).result()


@pytest.fixture
def live(
    migrated_db_url: str,
    redis_server: PrivateRedis,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Live]:
    monkeypatch.chdir(tmp_path)
    settings = dashboard_settings(migrated_db_url, redis_url=redis_server.url)
    with serve_in_thread(create_app(settings)) as url:
        yield Live(url, redis_server.url, migrated_db_url)


def _from_a_job(symbol: str, close: datetime, job_id: int) -> dict[str, Any]:
    """What a `suggestion` job writes for a past close with no pattern signal and no model."""
    why = "no pattern signal in the recent bars; no active model (a `training` job makes one)"
    made = _suggestion(symbol, close, "hold", degraded=why)
    made["inputs"] = {"source": {"job_id": job_id, "as_of": close.isoformat()}, "sentiment": None}
    made["contributions"] = dict.fromkeys(made["contributions"])
    return made | {"signal_kind": "none", "signal_ts": close, "score": 0.0, "confidence": 0.0}


def _suggestion(
    symbol: str, at: datetime, direction: str, *, degraded: str | None = None
) -> dict[str, Any]:
    """A suggestion row: from the signal and both models, or (`degraded`) the signal alone."""
    sign = {"buy": 1.0, "sell": -1.0, "hold": 0.2}[direction]
    inputs: dict[str, Any] = {
        "signal": {"kind": "zscore_breakout", "side": "buy" if sign > 0 else "sell", "score": 2.5}
    }
    contributions: dict[str, float | None] = {
        "signal": 0.3 * sign,
        "forecaster": None,
        "pattern_classifier": None,
        "sentiment": None,
    }
    if degraded is None:
        inputs["forecaster"] = {"version": 1, "return": 0.01 * sign, "value": 0.4 * sign}
        inputs["pattern_classifier"] = {
            "version": 2,
            "probs": {"down": 0.2, "flat": 0.3, "up": 0.5},
            "value": 0.3,
        }
        inputs["challengers"] = {"forecaster": {"version": 3, "return": 0.0, "value": 0.1}}
        contributions |= {"forecaster": 0.1 * sign, "pattern_classifier": 0.08 * sign}
    inputs["sentiment"] = None
    score = sum(c for c in contributions.values() if c is not None)
    return {
        "symbol": symbol,
        "ts": at,
        "signal_kind": "zscore_breakout",
        "signal_ts": at - timedelta(milliseconds=3),
        "direction": direction,
        "score": score,
        "confidence": abs(score),
        "horizon": None if degraded else 5,
        "contributions": contributions,
        "inputs": inputs,
        "degraded": degraded,
        "latency_ms": 4.2,
    }


def test_suggestions_show_stored_then_live_once_each_with_a_partial_ones_reason(
    live: Live, page: Watched
) -> None:
    now = datetime.now(UTC)  # microseconds kept: the stored and live copies must still match
    aaa = _suggestion("AAA", now - timedelta(minutes=3), "buy")
    bbb = _suggestion("BBB", now - timedelta(minutes=2), "sell")
    ccc = _suggestion("CCC", now - timedelta(minutes=1), "hold", degraded=NO_MODEL)
    live.store(aaa, bbb, ccc)
    view = page.page
    view.goto(live.url + "/#suggestions")
    rows = view.locator("#suggestions tbody tr")
    expect(rows).to_have_count(3, timeout=10_000)
    assert [rows.nth(i).get_attribute("data-symbol") for i in range(3)] == ["CCC", "BBB", "AAA"]

    full = view.locator('#suggestions tr[data-symbol="AAA"]')
    expect(full.locator(".direction")).to_contain_text("buy")
    expect(full.locator(".partial-tag")).to_have_count(0)
    expect(full.locator(".models")).to_contain_text("forecaster v1")
    expect(full.locator(".models")).to_contain_text("classifier v2")
    expect(full.locator(".models")).to_contain_text("forecaster v3 (challenger)")
    expect(full.locator('li[data-input="forecaster"] .contrib-value')).to_have_text("+0.10")
    expect(full.locator('li[data-input="sentiment"] .contrib-value')).to_have_text("—")
    partial = view.locator('#suggestions tr[data-symbol="CCC"]')
    expect(partial.locator(".partial-tag")).to_be_visible()
    expect(partial.locator(".degraded-reason")).to_have_text(f"⚠ {NO_MODEL}")
    expect(partial.locator('li[data-input="forecaster"] .contrib-value')).to_have_text("—")
    expect(partial.locator(".models")).to_have_text("—")

    # Live, without a reload: AAA again (stored already: drawn once), then a new partial one.
    expect(view.locator("#feed-suggestions")).to_have_attribute("data-state", "live")
    ddd = _suggestion("DDD", datetime.now(UTC), "sell", degraded=PAUSED)
    live.publish(aaa, ddd)
    expect(rows.first).to_have_attribute("data-symbol", "DDD", timeout=5_000)
    expect(rows.first.locator(".degraded-reason")).to_contain_text(PAUSED)
    expect(rows).to_have_count(4)
    expect(view.locator('#suggestions tr[data-symbol="AAA"]')).to_have_count(1)
    shoot(view, "suggestions")
    assert _sideways(view) == {}

    # A `suggestion` job writes a past close's suggestion without publishing it: its end,
    # announced on the bus, has the list read again, and the old row goes in its place.
    # DDD, live first, is stored meanwhile (as the engine writes it): still drawn once.
    live.store(ddd, _from_a_job("EEE", now - timedelta(days=3), job_id=7))
    live.announce(JobUpdate(id=7, type=JobType.SUGGESTION, status=RunStatus.COMPLETED))
    expect(rows).to_have_count(5, timeout=5_000)
    expect(rows.last).to_have_attribute("data-symbol", "EEE")
    expect(rows.last.locator(".kind")).to_contain_text("no signal")
    expect(rows.last.locator(".kind .source")).to_have_text("job #7")
    expect(rows.last.locator(".degraded-reason")).to_contain_text("no pattern signal")

    # The filters: by symbol (typed, any case), then by direction.
    view.fill("#suggestion-symbol", "aa")
    shown = view.locator("#suggestions tbody tr:not([hidden])")
    expect(shown).to_have_count(1)
    expect(shown.first).to_have_attribute("data-symbol", "AAA")
    view.fill("#suggestion-symbol", "")
    view.select_option("#suggestion-direction", "sell")
    expect(shown).to_have_count(2)
    assert {shown.nth(i).get_attribute("data-symbol") for i in range(2)} == {"BBB", "DDD"}

    assert page.errors == []
    assert page.only_asked(live.url)
