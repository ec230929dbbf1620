"""The news tables: items stored once per (source, id), read point in time."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from models.news import NewsItem, NewsRecord, NewsSymbol

MAX_LIST = 1000


def stored_hashes(
    session: Session, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The content hash of each (source, source_id) in `keys` already stored."""
    out: dict[tuple[str, str], str] = {}
    wanted = sorted(keys)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = session.execute(
            select(NewsItem.source, NewsItem.source_id, NewsItem.content_hash).where(
                tuple_(NewsItem.source, NewsItem.source_id).in_(chunk)
            )
        )
        out.update({(source, sid): digest for source, sid, digest in rows})
    return out


def insert_news(
    session: Session,
    records: Sequence[tuple[NewsRecord, str]],
    *,
    instruments: Collection[str] | None = None,
) -> int:
    """Store (record, content hash) pairs not stored yet; the caller checked which those are.
    Each item is joined to its symbols that are in `instruments` (default: all of them)."""
    for record, digest in records:
        item = NewsItem(
            source=record.source,
            source_id=record.source_id,
            headline=record.headline,
            summary=record.summary,
            symbols=list(record.symbols),
            published_at=record.published_at,
            received_at=record.received_at,
            known_at=record.known_at,
            known_from=record.known_from,
            url=record.url,
            content_hash=digest,
        )
        session.add(item)
        session.flush()
        session.add_all(
            NewsSymbol(news_id=item.id, symbol=symbol, known_at=record.known_at)
            for symbol in record.symbols
            if instruments is None or symbol in instruments
        )
    session.flush()
    return len(records)


def news_as_of(
    session: Session,
    as_of: datetime,
    *,
    symbols: Collection[str] | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[NewsItem]:
    """Items known by `as_of` (and at or after `since`), newest first; with `symbols`, those
    naming any of them. Nothing known after `as_of` is ever returned."""
    stmt = select(NewsItem).where(NewsItem.known_at <= as_of)
    if since is not None:
        stmt = stmt.where(NewsItem.known_at >= since)
    if symbols:
        named = select(NewsSymbol.news_id).where(
            NewsSymbol.symbol.in_(sorted(symbols)), NewsSymbol.known_at <= as_of
        )
        stmt = stmt.where(NewsItem.id.in_(named))
    stmt = stmt.order_by(NewsItem.known_at.desc(), NewsItem.id.desc()).limit(min(limit, MAX_LIST))
    return list(session.scalars(stmt))
