"""Import news: validate every item, store the new ones once, report the rest.

One path for every source (`import_news_rows`): a news archive file, Alpaca's
historical news (services/vendors/alpaca_news.py) and Alpaca's live stream
(realtime/news_stream.py, which is handed this function: realtime does not import
tasks). Rules, each a rejection with its line (or id) and reason (nothing is guessed):

* a line that is not an item (bad JSON), a missing or malformed field, a time
  without an offset, `received_at` before `published_at`;
* an item none of whose symbols is an instrument (import bars or reference data
  first): news about tickers the system does not know joins to nothing. An item
  naming an instrument and others (Alpaca tags ETFs, crypto pairs, foreign
  lines) is kept: `symbols` says all it named, it is joined to the instruments
  only, and the report counts it in `partly_joined`;
* the same (source, id) twice in the file with different content; the same
  content twice is one item;
* an id already stored with different content: news is a record of what was
  said, so a correction must come as an item of its own.

An item already stored with the same content is counted `unchanged`, so
importing a file twice changes nothing. Without `received_at` an item is known
from `published_at` (`known_from = "published"`): an archive that did not keep
when each item arrived is read as if it arrived when published, and every read
of it says so.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.queries.news import insert_news, stored_hashes
from models.market import Instrument
from models.news import NewsRecord
from services.vendors.news_file import read_news_file

logger = logging.getLogger(__name__)

MAX_REASONS = 50  # rejections listed in the report; all are counted


@dataclass
class NewsImportReport:
    path: str
    read: int = 0
    new: int = 0  # valid and not stored yet
    inserted: int = 0  # of those, written (0 in a dry run)
    unchanged: int = 0
    rejected: int = 0
    from_published: int = 0  # stored items known from published_at (no received_at)
    partly_joined: int = 0  # new items naming symbols that are not instruments, joined without
    reasons: list[str] = field(default_factory=list)
    unit: str = "line"  # what names a row in `reasons`: a file's line, Alpaca's id

    def reject(self, line: int, why: str) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(f"{self.unit} {line}: {why}")


def content_hash(record: NewsRecord) -> str:
    """What makes two items the same item: their text, symbols and times."""
    parts = [
        record.headline,
        record.summary or "",
        ",".join(sorted(record.symbols)),
        record.published_at.isoformat(),
        record.url or "",
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def import_news_file(
    session: Session, path: Path, *, source: str = "file", dry_run: bool = False
) -> NewsImportReport:
    """Validate `path` and store its new items in the caller's transaction."""
    return import_news_rows(
        session, read_news_file(path, source=source), str(path), dry_run=dry_run
    )


def import_news_rows(
    session: Session,
    rows: Iterable[tuple[int, dict[str, Any] | str]],
    origin: str,
    *,
    dry_run: bool = False,
    unit: str = "line",
) -> NewsImportReport:
    """Validate `rows` and store their new items in the caller's transaction.

    The one path every source of news takes (a file, Alpaca's archive, Alpaca's live
    stream), so each obeys the rules above. A row is `(n, fields)`, or `(n, reason)` for
    one that could not be read at all; `n` names it in the reasons as `{unit} {n}` (a
    file's line, Alpaca's id).
    """
    report = NewsImportReport(origin, unit=unit)
    valid: dict[tuple[str, str], tuple[int, NewsRecord, str]] = {}
    for line, row in rows:
        report.read += 1
        if isinstance(row, str):
            report.reject(line, row)
            continue
        try:
            record = NewsRecord.model_validate(row)
        except ValidationError as error:
            report.reject(line, _first(error))
            continue
        key, digest = (record.source, record.source_id), content_hash(record)
        if key in valid:
            first_line, _, first_digest = valid[key]
            if first_digest != digest:
                report.reject(line, f"{key[0]}/{key[1]} differs from {unit} {first_line}")
            continue  # the same item again: one item
        valid[key] = (line, record, digest)
    known = _instruments(session, {s for _, r, _ in valid.values() for s in r.symbols})
    stored = stored_hashes(session, valid.keys())
    new: list[tuple[NewsRecord, str]] = []
    for key, (line, record, digest) in valid.items():
        unknown = [s for s in record.symbols if s not in known]
        if len(unknown) == len(record.symbols):
            report.reject(line, f"not an instrument: {', '.join(unknown)}")
        elif key in stored:
            if stored[key] == digest:
                report.unchanged += 1
            else:
                report.reject(line, f"{key[0]}/{key[1]} is stored with other content")
        else:
            new.append((record, digest))
            report.from_published += record.received_at is None
            report.partly_joined += bool(unknown)
    report.new = len(new)
    if not dry_run:
        report.inserted = insert_news(session, new, instruments=known)
    logger.info(
        "news.imported",
        extra={
            k: getattr(report, k) for k in ("path", "read", "inserted", "unchanged", "rejected")
        },
    )
    return report


def _instruments(session: Session, symbols: set[str]) -> set[str]:
    if not symbols:
        return set()
    rows = session.scalars(select(Instrument.symbol).where(Instrument.symbol.in_(sorted(symbols))))
    return set(rows)


def _first(error: ValidationError) -> str:
    """The first problem of a row, in one line: `field: message`."""
    first = error.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:  # a rule across fields: its message names them
        return message
    return f"{'.'.join(str(p) for p in first['loc'])}: {message}"
