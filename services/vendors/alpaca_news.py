"""Alpaca's news, as rows `NewsRecord` takes: its archive through alpaca-py's `NewsClient`,
and the conversion its live stream (realtime/news_stream.py) uses too.

This module knows Alpaca's shapes, not validity: every item comes out as a row,
and tasks/import_news.py validates it like a line of a file (a symbol that is not
an instrument, such as Alpaca's crypto pairs `BTCUSD`, is refused there, with the
reason). Alpaca's item ids are integers, unique within Alpaca: `source_id` is their
text, under the source "alpaca". Alpaca's own `source` (benzinga, ...), `author`,
`content` and `images` are not kept.

alpaca-py is imported inside the functions that call it: it brings pandas, and
the realtime process imports this module whether or not it streams news.

Errors:

* AITraderError
  x ConfigurationError   no ALPACA_API_KEY / ALPACA_SECRET_KEY
  x InvalidInputError    `end` before `start`
  x AlpacaNewsError      Alpaca answered an error, or did not answer in time
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgpack

from models.errors import AITraderError, InvalidInputError
from services.settings import Settings

if TYPE_CHECKING:
    from alpaca.data.historical.news import NewsClient
    from alpaca.data.models.news import News

SOURCE = "alpaca"
DEFAULT_TIMEOUT_S = 30.0


class AlpacaNewsError(AITraderError):
    """Alpaca's news API answered an error, or did not answer within the timeout."""


def news_row(item: News | Mapping[str, Any], *, received_at: datetime | None) -> dict[str, Any]:
    """One Alpaca item (an alpaca-py `News`, or its raw dict) as the fields `NewsRecord` takes.

    `received_at` is when the item reached us: for the live stream, the moment it
    arrived; for the archive None, because we cannot know when we would have had an
    item we fetch after the fact, so it is known from `published_at` (Alpaca's
    `created_at`) like any archive, and the stored row says so. A live item is never
    received before it was published: a clock a moment behind Alpaca's would make it
    so, and the item would be refused, so `received_at` is at least `created_at`.
    """
    fields = item if isinstance(item, Mapping) else item.model_dump()
    published = _utc(fields.get("created_at"))
    if received_at is not None and isinstance(published, datetime):
        received_at = max(received_at.astimezone(UTC), published)
    return {
        "source": SOURCE,
        "source_id": None if fields.get("id") is None else str(fields["id"]),
        "headline": fields.get("headline"),
        "summary": fields.get("summary") or None,
        "symbols": [str(s).strip().upper() for s in fields.get("symbols") or []],
        "published_at": published,
        "received_at": received_at,
        "url": fields.get("url") or None,
    }


def fetch_news(
    settings: Settings,
    start: datetime,
    end: datetime,
    symbols: Iterable[str] | None = None,
    *,
    limit: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Alpaca's items created in [start, end], oldest first, as rows (see `news_row`).

    alpaca-py follows the pages itself (50 items each); `limit` caps the total, None
    fetches all. Keys from ALPACA_API_KEY / ALPACA_SECRET_KEY, the server from
    ALPACA_DATA_URL (unset: Alpaca's). Each request gives up after `timeout_s`, and
    alpaca-py's own retries (429/504) are off: a caller that wants another try asks
    again, and the import is idempotent.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes")
    if end < start:
        raise InvalidInputError("end", f"{end.isoformat()} is before start {start.isoformat()}")
    from alpaca.common.exceptions import APIError
    from alpaca.data.requests import NewsRequest
    from requests import RequestException, Timeout

    client = news_client(settings, timeout_s=timeout_s)
    wanted = sorted({s.strip().upper() for s in symbols or [] if s.strip()})
    request = NewsRequest(
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        sort="asc",
        symbols=",".join(wanted) or None,
        limit=limit,
    )
    where = settings.alpaca_data_url or "Alpaca"
    try:
        answer = client.get_news(request)
    except APIError as error:
        raise AlpacaNewsError(f"Alpaca news: {_describe(error)}") from None
    except Timeout:
        raise AlpacaNewsError(
            f"Alpaca news: no answer from {where} within {timeout_s:g} s"
        ) from None
    except RequestException as error:  # refused, reset, DNS: no answer at all
        raise AlpacaNewsError(
            f"Alpaca news: cannot reach {where} ({type(error).__name__})"
        ) from None
    items = answer if isinstance(answer, Mapping) else answer.data
    return [news_row(item, received_at=None) for item in items.get("news", [])]


def news_client(settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> NewsClient:
    """alpaca-py's `NewsClient` with a request timeout and without its own retries, as
    the broker's client (services/brokers/alpaca.py): alpaca-py sets no timeout."""
    from alpaca.data.historical.news import NewsClient

    from services.brokers.alpaca import TimeoutAdapter

    key, secret = settings.alpaca_keys("Alpaca news")
    client = NewsClient(key, secret, url_override=settings.alpaca_data_url)
    client._retry = 0  # RESTClient retries 429/504 three times, 3 s apart, unless told not to
    adapter = TimeoutAdapter(timeout_s)
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)
    return client


def _utc(value: Any) -> Any:
    """Alpaca's times as aware UTC datetimes: alpaca-py's datetimes and the stream's msgpack
    Timestamps; text is left for validation to parse (or refuse)."""
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime()
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _describe(error: Any) -> str:
    """`403 forbidden`: the HTTP status and Alpaca's message, in one line."""
    status = error.status_code
    try:
        message = str(error.message)  # parses the body as JSON on access
    except (ValueError, KeyError, TypeError):  # a body that is not Alpaca's {"message": ...}
        message = str(error)  # the body as text
    first = message.splitlines()[0][:300] if message.strip() else "no message"
    return f"{status} {first}" if status is not None else first
