"""Alpaca's news in, through alpaca-py's real clients against loopback fakes: the archive
(`NewsClient`, pages and errors), its import under the rules of a file, `aitrader data
news-alpaca`, and the live stream (`NewsDataStream`) stored as it arrives, point in time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.instruments import ensure_instruments
from models.errors import ConfigurationError, InvalidInputError
from models.news import NewsItem
from realtime.news_stream import AlpacaNewsStream, start_news_stream
from services.settings import NewsSource, Settings
from services.vendors.alpaca_news import AlpacaNewsError, fetch_news, news_row
from tasks.import_news import import_news_rows
from tests.fake_alpaca_rest import NEWS, FakeAlpacaRest, Reject, Slow, fake_alpaca_rest
from tests.fake_alpaca_stream import FakeAlpacaStream

KEY, SECRET = "test-key", "test-secret"
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
DAY = timedelta(days=1)


def _item(news_id: int, *symbols: str, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    """An Alpaca news item, `news_id` minutes after T0 unless `at` says otherwise."""
    return {
        "id": news_id,
        "headline": f"Headline {news_id}",
        "summary": f"Summary {news_id}",
        "symbols": list(symbols or ("AAPL",)),
        "created_at": at or T0 + timedelta(minutes=news_id),
        "url": f"https://news.example/{news_id}",
        **fields,
    }


@pytest.fixture(scope="module")
def module_rest() -> Iterator[FakeAlpacaRest]:
    with fake_alpaca_rest() as server:
        yield server


@pytest.fixture
def rest(module_rest: FakeAlpacaRest) -> FakeAlpacaRest:
    module_rest.reset()
    return module_rest


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with unit_of_work(sessions) as session:
        ensure_instruments(session, ["AAPL", "MSFT"])
    return sessions


def _settings(rest: FakeAlpacaRest, **fields: Any) -> Settings:
    return Settings(
        alpaca_api_key=SecretStr(KEY),
        alpaca_secret_key=SecretStr(SECRET),
        alpaca_data_url=rest.base_url,
        **fields,
    )


def _import(db: sessionmaker[Session], rows: list[dict[str, Any]]) -> Any:
    with unit_of_work(db) as session:
        keyed = [(int(row["source_id"]), row) for row in rows]
        return import_news_rows(session, keyed, "alpaca test", unit="alpaca id")


# --- the archive --------------------------------------------------------------


def test_the_archive_is_read_across_pages_oldest_first_as_rows(rest: FakeAlpacaRest) -> None:
    rest.news_page_size = 2
    rest.set_news(
        _item(3, "aapl", "MSFT"),
        _item(1),
        _item(2, "BTCUSD", summary="", url=None),
        _item(5),
        _item(4, "MSFT"),
        _item(9, at=T0 + 2 * DAY),  # after the window
    )
    rows = fetch_news(_settings(rest), T0, T0 + DAY)
    assert [r["source_id"] for r in rows] == ["1", "2", "3", "4", "5"]
    pages = [r.query.get("page_token") for r in rest.requests]
    assert len(pages) == 3
    assert pages[0] is None
    assert None not in pages[1:]  # alpaca-py followed Alpaca's tokens
    first, second, third = rows[:3]
    assert first == {
        "source": "alpaca",
        "source_id": "1",
        "headline": "Headline 1",
        "summary": "Summary 1",
        "symbols": ["AAPL"],
        "published_at": T0 + timedelta(minutes=1),
        "received_at": None,  # an archive: known from when it was published
        "url": "https://news.example/1",
    }
    assert first["published_at"].tzinfo is not None
    assert (second["summary"], second["url"], second["symbols"]) == (None, None, ["BTCUSD"])
    assert third["symbols"] == ["AAPL", "MSFT"]
    only = fetch_news(_settings(rest), T0, T0 + DAY, ["msft"])
    assert [r["source_id"] for r in only] == ["3", "4"]
    assert rest.requests[-1].query["symbols"] == "MSFT"


def test_alpaca_errors_and_silence_raise_one_line_errors(rest: FakeAlpacaRest) -> None:
    settings = _settings(rest)
    rest.enqueue(Reject(403, "forbidden"), on=NEWS)
    with pytest.raises(AlpacaNewsError, match=r"^Alpaca news: 403 forbidden$"):
        fetch_news(settings, T0, T0 + DAY)
    rest.enqueue(Reject(429, "too many requests"), on=NEWS)
    with pytest.raises(AlpacaNewsError, match="429 too many requests"):  # not retried for 9 s
        fetch_news(settings, T0, T0 + DAY)
    rest.enqueue(Slow(2.0), on=NEWS)
    with pytest.raises(AlpacaNewsError, match=r"no answer from http://127\.0\.0\.1:\d+ within"):
        fetch_news(settings, T0, T0 + DAY, timeout_s=0.2)
    assert len(rest.requests) == 3
    with pytest.raises(InvalidInputError, match="is before start"):
        fetch_news(settings, T0, T0 - DAY)
    with pytest.raises(ConfigurationError, match="ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        fetch_news(Settings(alpaca_data_url=rest.base_url), T0, T0 + DAY)
    assert len(rest.requests) == 3  # refused before asking


def test_an_alpaca_import_keeps_the_rules_of_a_file(
    db: sessionmaker[Session], rest: FakeAlpacaRest
) -> None:
    rest.set_news(_item(1), _item(2, "AAPL", "BTCUSD"), _item(3, "MSFT"), _item(5, "BTCUSD"))
    report = _import(db, fetch_news(_settings(rest), T0, T0 + DAY))
    assert (report.read, report.inserted, report.rejected, report.from_published) == (4, 3, 1, 3)
    assert report.partly_joined == 1  # id 2: AAPL news, also tagged with a crypto pair
    assert report.reasons == ["alpaca id 5: not an instrument: BTCUSD"]
    with db() as session:
        items = session.scalars(select(NewsItem).order_by(NewsItem.source_id)).all()
        assert [(n.source, n.source_id, n.symbols) for n in items] == [
            ("alpaca", "1", ["AAPL"]),
            ("alpaca", "2", ["AAPL", "BTCUSD"]),
            ("alpaca", "3", ["MSFT"]),
        ]
        assert all(n.known_from == "published" and n.received_at is None for n in items)
        assert items[0].known_at == T0 + timedelta(minutes=1)
    rest.set_news(_item(1), _item(3, "MSFT", headline="Edited since"), _item(4), _item(4, "MSFT"))
    again = _import(db, fetch_news(_settings(rest), T0, T0 + DAY))
    assert (again.inserted, again.unchanged, again.rejected) == (1, 1, 2)
    assert again.reasons == [
        "alpaca id 4: alpaca/4 differs from alpaca id 4",  # one id, two contents in one answer
        "alpaca id 3: alpaca/3 is stored with other content",
    ]
    with db() as session:
        assert session.scalar(select(func.count()).select_from(NewsItem)) == 4
        kept = session.scalars(select(NewsItem).where(NewsItem.source_id.in_(["3", "4"])))
        assert {n.source_id: (n.headline, n.symbols) for n in kept} == {
            "3": ("Headline 3", ["MSFT"]),  # as first stored
            "4": ("Headline 4", ["AAPL"]),  # the first of the two in the answer
        }


# --- aitrader data news-alpaca ------------------------------------------------------


def _cli_env(monkeypatch: pytest.MonkeyPatch, rest: FakeAlpacaRest, *, keys: bool = True) -> None:
    monkeypatch.setenv("ALPACA_DATA_URL", rest.base_url)
    for name, value in (("ALPACA_API_KEY", KEY), ("ALPACA_SECRET_KEY", SECRET)):
        if keys:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)


def _stored(db_url: str) -> list[tuple[str, datetime]]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.execute(select(NewsItem.source_id, NewsItem.known_at))
            return sorted((sid, known.replace(tzinfo=UTC)) for sid, known in rows)
    finally:
        engine.dispose()


def test_aitrader_data_news_alpaca_imports_a_day_and_says_what_it_refused(
    aitrader: Any, sample_db: str, rest: FakeAlpacaRest, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli_env(monkeypatch, rest)
    late = T0.replace(hour=23, minute=59)
    rest.set_news(_item(1), _item(2, "BTCUSD"), _item(3, "MSFT", at=late), _item(4, at=T0 + DAY))
    args = ("data", "news-alpaca", "--start", "2024-01-02", "--end", "2024-01-02")
    code, out = aitrader(*args, "--dry-run")
    assert code == 0, out
    assert "3 read, 2 new (dry run: none written), 0 unchanged, 1 rejected" in out
    assert _stored(sample_db) == []
    code, out = aitrader(*args)
    assert code == 0, out
    assert "news from alpaca 2024-01-02..2024-01-02: 3 read, 2 new, 0 unchanged, 1 rejected" in out
    assert "2 known from published_at" in out
    assert "rejected alpaca id 2: not an instrument: BTCUSD" in out
    assert _stored(sample_db) == [("1", T0 + timedelta(minutes=1)), ("3", late)]
    code, out = aitrader(*args, "--symbols", "aapl,msft")
    assert code == 0, out
    assert "2 read, 0 new, 2 unchanged, 0 rejected" in out
    assert rest.requests[-1].query["symbols"] == "AAPL,MSFT"
    assert rest.requests[-1].query["end"].startswith("2024-01-02T23:59:59")  # the whole day


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            "no keys", "error: Alpaca news needs ALPACA_API_KEY and ALPACA_SECRET_KEY", id="keys"
        ),
        pytest.param("refused", "error: Alpaca news: 403 forbidden", id="refused"),
        pytest.param(
            "backwards", "error: --end: 2024-01-01 is before --start 2024-01-02", id="backwards"
        ),
    ],
)
def test_aitrader_data_news_alpaca_fails_in_one_line_and_writes_nothing(
    aitrader: Any,
    sample_db: str,
    rest: FakeAlpacaRest,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    expected: str,
) -> None:
    _cli_env(monkeypatch, rest, keys=case != "no keys")
    rest.set_news(_item(1))
    if case == "refused":
        rest.enqueue(Reject(403, "forbidden"), on=NEWS)
    start, end = ("2024-01-02", "2024-01-01") if case == "backwards" else ("2024-01-02",) * 2
    code, out = aitrader("data", "news-alpaca", "--start", start, "--end", end)
    assert code == 1, out
    assert expected in out
    assert [line for line in out.splitlines() if line.strip()] == [out.strip()], out
    assert _stored(sample_db) == []


# --- the live stream ----------------------------------------------------------------


@pytest.fixture
def alpaca_stream() -> Iterator[FakeAlpacaStream]:
    with FakeAlpacaStream(KEY, SECRET) as server:
        yield server


def _stream(
    server: FakeAlpacaStream, sessions: sessionmaker[Session], *, key: str = KEY
) -> AlpacaNewsStream:
    return AlpacaNewsStream(
        key, SECRET, sessions, import_news_rows, url_override=server.news_url, flush_interval_s=0.02
    )


async def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll while letting the stream run on this loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        await asyncio.sleep(0.01)


def _items(sessions: sessionmaker[Session]) -> dict[str, NewsItem]:
    with sessions() as session:
        return {n.source_id: n for n in session.scalars(select(NewsItem))}


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC; Postgres aware."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def test_live_items_are_stored_once_known_from_when_they_arrived(
    db: sessionmaker[Session], alpaca_stream: FakeAlpacaStream
) -> None:
    async def scenario() -> AlpacaNewsStream:
        stream = _stream(alpaca_stream, db)
        await stream.start()
        try:
            await _eventually(lambda: alpaca_stream.subscribed_news == {"*"})
            before = datetime.now(UTC)
            assert alpaca_stream.push_news(_item(1, at=before - timedelta(minutes=5))) == 1
            alpaca_stream.push_news(_item(2, "BTCUSD", at=before))
            await _eventually(lambda: stream.inserted == 1 and stream.rejected == 1)
            after = datetime.now(UTC)
            alpaca_stream.push_news(_item(1, at=before - timedelta(minutes=5)))  # sent again
            ahead = datetime.now(UTC) + timedelta(seconds=30)  # Alpaca's clock ahead of ours
            alpaca_stream.push_news(_item(3, "MSFT", at=ahead))
            await _eventually(lambda: stream.unchanged == 1 and stream.inserted == 2)
        finally:
            await stream.stop()
        items = _items(db)
        assert sorted(items) == ["1", "3"]  # BTCUSD is not an instrument: not stored
        first = items["1"]
        received = _utc(first.received_at)
        assert received is not None
        assert before <= received <= after
        assert (_utc(first.known_at), first.known_from) == (received, "received")
        assert _utc(first.published_at) == before - timedelta(minutes=5)
        # received "before" it was published by Alpaca's clock: known from its creation
        assert _utc(items["3"].received_at) == _utc(items["3"].known_at) == ahead
        return stream

    stream = asyncio.run(scenario())
    assert (stream.received, stream.rejected, stream.pending) == (4, 1, 0)
    assert not stream.running


def test_the_stream_reconnects_after_a_drop_and_stops_cleanly(
    db: sessionmaker[Session], alpaca_stream: FakeAlpacaStream
) -> None:
    async def scenario() -> None:
        stream = _stream(alpaca_stream, db)
        await stream.start()
        try:
            await _eventually(lambda: alpaca_stream.subscribed_news == {"*"})
            alpaca_stream.push_news(_item(1))
            await _eventually(lambda: stream.inserted == 1)
            assert alpaca_stream.drop_connections() == 1
            # alpaca-py waits 0.5-1 s, reconnects, logs in and re-subscribes by itself.
            await _eventually(
                lambda: (
                    alpaca_stream.connections_opened == 2 and alpaca_stream.subscribed_news == {"*"}
                )
            )
            alpaca_stream.push_news(_item(2, "MSFT"))
            await _eventually(lambda: stream.inserted == 2)
            assert stream.running
        finally:
            await stream.stop()
        assert not stream.running
        await stream.stop()  # twice is a no-op
        await _eventually(lambda: alpaca_stream.open_connections == 0)
        assert alpaca_stream.push_news(_item(3)) == 0  # nobody listens any more
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert pending == []

    asyncio.run(scenario())
    assert sorted(_items(db)) == ["1", "2"]


def test_a_refused_key_ends_the_stream_with_the_reason_logged(
    alpaca_stream: FakeAlpacaStream, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        stream = _stream(alpaca_stream, sessionmaker(), key="revoked")
        await stream.start()
        try:
            await _eventually(lambda: not stream.running)
        finally:
            await stream.stop()

    with caplog.at_level(logging.ERROR, logger="realtime.news_stream"):
        asyncio.run(scenario())
    assert alpaca_stream.auth_failures == 1  # not retried for ever
    (record,) = [r for r in caplog.records if r.getMessage() == "news.auth_failed"]
    assert "auth failed" in record.reason  # type: ignore[attr-defined]


def test_the_stream_starts_only_when_asked_and_only_with_keys() -> None:
    async def scenario() -> None:
        sessions: sessionmaker[Session] = sessionmaker()
        assert await start_news_stream(Settings(), sessions, import_news_rows) is None
        with pytest.raises(ConfigurationError, match="NEWS_SOURCE=alpaca needs ALPACA_API_KEY"):
            await start_news_stream(
                Settings(news_source=NewsSource.ALPACA), sessions, import_news_rows
            )

    asyncio.run(scenario())


def test_raw_items_become_the_same_rows_and_a_live_one_is_never_received_early() -> None:
    parsed = news_row({**_item(7, "aapl"), "created_at": "2024-01-02T14:37:00Z"}, received_at=None)
    assert parsed["published_at"] == "2024-01-02T14:37:00Z"  # text: validation parses it
    stamp = msgpack.Timestamp.from_datetime(T0)
    live = news_row({**_item(7, "aapl"), "created_at": stamp}, received_at=T0 - DAY)
    assert (live["published_at"], live["received_at"]) == (T0, T0)  # our clock was behind
    arrived = T0 + timedelta(seconds=2)
    later = news_row({**_item(7), "created_at": stamp}, received_at=arrived)
    assert later["received_at"] == arrived
    assert live["symbols"] == ["AAPL"]
    assert live["source_id"] == "7"


def test_a_failed_write_keeps_the_items_and_stores_them_at_the_next_flush(
    db: sessionmaker[Session], alpaca_stream: FakeAlpacaStream, caplog: pytest.LogCaptureFixture
) -> None:
    failures = [OperationalError("INSERT", {}, Exception("database is away"))] * 2

    def flaky_store(session: Session, rows: Any, origin: str, **options: Any) -> Any:
        if failures:
            raise failures.pop()
        return import_news_rows(session, rows, origin, **options)

    async def scenario() -> AlpacaNewsStream:
        stream = AlpacaNewsStream(
            KEY, SECRET, db, flaky_store, url_override=alpaca_stream.news_url, flush_interval_s=0.02
        )
        await stream.start()
        try:
            await _eventually(lambda: alpaca_stream.subscribed_news == {"*"})
            alpaca_stream.push_news(_item(1))
            await _eventually(lambda: stream.write_failures >= 1)
            alpaca_stream.push_news(_item(2, "MSFT"))
            await _eventually(lambda: stream.inserted == 2)
        finally:
            await stream.stop()
        return stream

    with caplog.at_level(logging.INFO, logger="realtime.news_stream"):
        stream = asyncio.run(scenario())
    assert (stream.write_failures, stream.dropped, stream.pending) == (2, 0, 0)
    assert sorted(_items(db)) == ["1", "2"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("news.write_failed") == 1  # once per outage
    assert messages.count("news.write_recovered") == 1
