"""Alpaca's live news into the news table, as it arrives, point in time.

Owns one alpaca-py `NewsDataStream` subscribed to all news (`*`) per start/stop
cycle, the asyncio task that runs it on our event loop, and a writer task. Each
item becomes a row (services/vendors/alpaca_news.py) with `received_at` = the
moment it reached us, so it is known from then (`known_from = "received"`), never
from Alpaca's earlier `created_at`: a backtest sees it when we could have.

Storing: items queue in memory; the writer hands them in batches to `store`, the
validate-and-store path of every news source (tasks/import_news.py
`import_news_rows`, handed in by the assembler: realtime does not import tasks),
in a worker thread (`asyncio.to_thread`) and one transaction per batch, so the
event loop never waits on the database. The same rules as a file hold: an item
naming no instrument is refused and logged, not stored (one naming an instrument
and other tickers is kept, joined to the instrument); an id
already stored with the same content is `unchanged` (a re-sent item is stored
once); one stored with other content (Alpaca re-sends an edited item under its
id) is refused, as a correction must be an item of its own.

Failure policy, for a process that runs for weeks:

* alpaca-py owns the wire and reconnects after a drop (0.5-1 s after a first
  drop, backing off to 30 s), re-subscribing; items sent while we were away are
  not re-sent (import them with `aitrader data news-alpaca`). A refused login
  (402 key, 409 plan) ends the stream, logged as `news.auth_failed`: `running`
  turns False.
* A failed write (the database away, or another writer storing the same item
  between our check and insert) keeps the batch and retries it at the next flush;
  at most `max_pending` items wait, past that the oldest are dropped and counted.

`start` does not wait for the login (a news outage must not hold up the realtime
process); `stop` stops the stream, then writes what had arrived.

alpaca-py (and with it pandas) is imported when a stream starts, not with this
module: the realtime process imports it whether or not it streams news.

Not here: per-symbol subscriptions, the news REST archive (services/vendors/alpaca_news.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self

from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from realtime.background import BackgroundTask
from realtime.sources.alpaca_login import LoginReporting
from services.settings import NewsSource, Settings
from services.vendors.alpaca_news import news_row

if TYPE_CHECKING:
    from alpaca.data.live.news import NewsDataStream
    from alpaca.data.models.news import News

logger = logging.getLogger(__name__)

ORIGIN = "alpaca news stream"


class StoredNews(Protocol):
    """What `NewsStore` reports (tasks/import_news.py `NewsImportReport`)."""

    @property
    def inserted(self) -> int: ...
    @property
    def unchanged(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def reasons(self) -> list[str]: ...


class NewsStore(Protocol):
    """Validate rows and store the new items in `session`: tasks/import_news.py
    `import_news_rows`, the path a news file takes too."""

    def __call__(
        self,
        session: Session,
        rows: Iterable[tuple[int, dict[str, Any] | str]],
        origin: str,
        *,
        dry_run: bool = ...,
        unit: str = ...,
    ) -> StoredNews: ...


async def start_news_stream(
    settings: Settings, sessions: sessionmaker[Session], store: NewsStore
) -> AlpacaNewsStream | None:
    """The stream NEWS_SOURCE asks for, started; None for `none`. Raises
    `ConfigurationError` when NEWS_SOURCE=alpaca has no keys."""
    if settings.news_source is not NewsSource.ALPACA:
        return None
    stream = AlpacaNewsStream.from_settings(settings, sessions, store)
    await stream.start()
    return stream


class AlpacaNewsStream:
    """All of Alpaca's live news, stored as it arrives. Call every method from the event
    loop's thread. `url_override` is the whole stream URL (`wss://…/v1beta1/news`)."""

    name = "alpaca-news"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        sessions: sessionmaker[Session],
        store: NewsStore,
        *,
        url_override: str | None = None,
        flush_interval_s: float = 0.5,
        max_pending: int = 10_000,
    ) -> None:
        if flush_interval_s <= 0 or max_pending < 1:
            raise ValueError("need flush_interval_s > 0 and max_pending >= 1")
        self._api_key = api_key
        self._secret_key = secret_key
        self._sessions = sessions
        self._store = store
        self._url_override = url_override
        self._interval = flush_interval_s
        self._max_pending = max_pending
        self._stream: NewsDataStream | None = None
        self._reader = BackgroundTask("alpaca-news-stream")
        self._writer = BackgroundTask("alpaca-news-writer")
        self._pending: deque[tuple[int, dict[str, Any]]] = deque()
        self._writing: asyncio.Future[StoredNews] | None = None
        self._wake = asyncio.Event()
        self._failing = False  # the last write failed: log the recovery
        self.received = self.inserted = self.unchanged = self.rejected = 0
        self.write_failures = self.dropped = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: sessionmaker[Session], store: NewsStore, **options: Any
    ) -> Self:
        """Keys and URL from settings (ALPACA_*); `options` override the constructor's."""
        key, secret = settings.alpaca_keys("NEWS_SOURCE=alpaca")
        options.setdefault("url_override", settings.alpaca_news_stream_url)
        return cls(key, secret, sessions, store, **options)

    @property
    def running(self) -> bool:
        """Started, and the stream has not ended (it has not, while it reconnects)."""
        return self._reader.running

    @property
    def pending(self) -> int:
        """Items received and not yet written."""
        return len(self._pending)

    async def start(self) -> None:
        if self.running:
            raise RuntimeError("the news stream is already running; stop it first")
        await self.stop()  # what is left of a stream that ended on a refusal
        stream = _stream_class()(self._api_key, self._secret_key, url_override=self._url_override)
        stream.subscribe_news(self._on_news, "*")  # not connected yet: nothing is sent
        self._stream = stream
        self._reader.start(self._read(stream))
        self._writer.start(self._write_loop())
        logger.info("news.stream_started", extra={"source": self.name})

    async def stop(self) -> None:
        """Stop the stream, then write what had arrived (one attempt); safe to call twice."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.stop_ws()  # no reconnect from here on
            try:
                await self._reader.stop()
            finally:
                await stream.close()
        await self._writer.stop()
        if self._writing is not None:  # a batch the writer had in a thread: let it land
            await asyncio.wait({self._writing})
        await self.flush()
        if self._pending:
            logger.warning("news.unwritten_at_stop", extra={"items": len(self._pending)})
        if stream is not None:
            logger.info("news.stream_stopped", extra={"received": self.received})

    async def flush(self) -> int:
        """Write what is queued, in one batch; returns the items it stored."""
        if not self._pending:
            return 0
        rows = list(self._pending)
        self._pending.clear()
        writing = asyncio.ensure_future(asyncio.to_thread(self._write, rows))
        self._writing = writing
        # Counted when done, and waited for with `wait`, not `await`: a stop that cancels
        # the writer here leaves the batch to land and be counted, not half done.
        writing.add_done_callback(functools.partial(self._written, rows))
        await asyncio.wait({writing})
        return 0 if writing.exception() is not None else writing.result().inserted

    def _write(self, rows: list[tuple[int, dict[str, Any]]]) -> StoredNews:
        with unit_of_work(self._sessions) as session:
            return self._store(session, rows, ORIGIN, unit="alpaca id")

    def _written(
        self, rows: list[tuple[int, dict[str, Any]]], writing: asyncio.Future[StoredNews]
    ) -> None:
        if self._writing is writing:
            self._writing = None
        if (error := writing.exception()) is not None:
            self.write_failures += 1
            if not self._failing:  # once per outage, not per retry
                logger.error("news.write_failed", exc_info=error, extra={"items": len(rows)})
            self._failing = True
            self._keep(rows)
            return
        if self._failing:
            logger.info("news.write_recovered", extra={"failures": self.write_failures})
            self._failing = False
        report = writing.result()
        self.inserted += report.inserted
        self.unchanged += report.unchanged
        self.rejected += report.rejected
        for reason in report.reasons:
            logger.info("news.rejected", extra={"reason": reason})

    def _keep(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        """Put a failed batch back in front of what arrived since; drop the oldest past
        `max_pending`."""
        kept = [*rows, *self._pending]
        overflow = max(0, len(kept) - self._max_pending)
        self.dropped += overflow
        self._pending = deque(kept[overflow:])

    async def _on_news(self, news: News | dict[Any, Any]) -> None:
        received_at = datetime.now(UTC)  # first, before anything else takes time
        if isinstance(news, dict):
            return  # raw_data is off: a dict would be a frame alpaca-py could not parse
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append((news.id, news_row(news, received_at=received_at)))
        self.received += 1
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def _read(self, stream: Any) -> None:
        """Run the stream on our loop until it is stopped or Alpaca refuses the login.

        `NewsDataStream.run()` wraps `asyncio.run`, so it cannot share our loop; this
        runs the coroutine it wraps, `_run_forever()` (private, alpaca-py 0.44).
        """
        try:
            await stream._run_forever()
        except Exception:  # a process edge: a broken stream must not take the process down
            logger.exception("news.stream_failed")
            return
        if stream.refusal is not None:
            logger.error(
                "news.auth_failed",
                extra={
                    "reason": f"Alpaca refused the news stream login ({stream.refusal}): "
                    "check ALPACA_API_KEY / ALPACA_SECRET_KEY and the key's data plan"
                },
            )


@functools.cache
def _stream_class() -> type[NewsDataStream]:
    """`NewsDataStream` that records a refused login and then stops, where alpaca-py would
    retry it for ever. Built on first use, so importing this module does not load alpaca-py.
    """
    from alpaca.data.live.news import NewsDataStream

    class _LoginReportingNewsStream(LoginReporting, NewsDataStream):
        pass

    return _LoginReportingNewsStream
