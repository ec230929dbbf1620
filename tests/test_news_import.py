"""News archives in, on both databases: what is stored, what is refused and why, and that a
read as of a moment never sees an item known after it."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.instruments import ensure_instruments
from db.queries.news import news_as_of
from models.errors import DataFileError
from models.news import NewsItem, NewsSymbol
from tasks.import_news import import_news_file

T = "2019-06-03T13:30:00+00:00"
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def _item(source_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": source_id,
        "headline": f"Headline {source_id}",
        "symbols": ["AAPL"],
        "published_at": T,
        "received_at": "2019-06-03T13:30:02+00:00",
        **fields,
    }


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with unit_of_work(sessions) as session:
        ensure_instruments(session, ["AAPL", "MSFT"])
    return sessions


def _import(db: sessionmaker[Session], path: Path, **options: Any) -> Any:
    with unit_of_work(db) as session:
        return import_news_file(session, path, **options)


def test_an_archive_is_stored_once_with_its_symbols_and_known_time(
    db: sessionmaker[Session], tmp_path: Path
) -> None:
    path = _jsonl(
        tmp_path / "news.jsonl",
        [
            _item("1", symbols=["aapl", "MSFT", "AAPL"], summary="Both named."),
            _item("2", received_at=None),  # an archive that kept no arrival time
            _item("2", received_at=None),  # the same item twice: one item
        ],
    )
    report = _import(db, path, source="archive")
    assert (report.read, report.inserted, report.rejected, report.from_published) == (3, 2, 0, 1)
    with db() as session:
        first, second = session.scalars(select(NewsItem).order_by(NewsItem.source_id)).all()
        assert (first.source, first.symbols, first.known_from) == (
            "archive",
            ["AAPL", "MSFT"],
            "received",
        )
        assert first.known_at == datetime(2019, 6, 3, 13, 30, 2, tzinfo=UTC)
        assert (second.known_from, second.known_at) == ("published", second.published_at)
        assert session.scalar(select(func.count()).select_from(NewsSymbol)) == 3
    again = _import(db, path, source="archive")
    assert (again.inserted, again.unchanged, again.rejected) == (0, 2, 0)


def test_bad_items_are_refused_with_their_line_and_reason(
    db: sessionmaker[Session], tmp_path: Path
) -> None:
    _import(db, _jsonl(tmp_path / "first.jsonl", [_item("9")]))
    rows: list[Any] = [
        "{not json",
        {k: v for k, v in _item("3").items() if k != "headline"},
        _item("4", published_at="2019-06-03T13:30:00"),  # no offset
        _item("5", received_at="2019-06-03T13:29:00+00:00"),  # before it was published
        _item("6", symbols=["NOPE"]),
        _item("7"),
        _item("7", headline="Changed in the same file"),
        _item("9", headline="Changed since it was stored"),
        _item("8"),
    ]
    report = _import(db, _jsonl(tmp_path / "bad.jsonl", rows))
    assert (report.inserted, report.rejected) == (2, 7)  # 7 and 8
    reasons = "\n".join(report.reasons)
    for expected in (
        "line 1: not JSON",
        "line 2: headline: Field required",
        "line 3: published_at: Input should have timezone info",
        "line 4: received_at 2019-06-03T13:29:00+00:00 is before published_at",
        "line 5: not an instrument: NOPE",
        "line 7: file/7 differs from line 6",
        "line 8: file/9 is stored with other content",
    ):
        assert expected in reasons, reasons
    with db() as session:
        stored = session.scalars(select(NewsItem.source_id).order_by(NewsItem.source_id)).all()
        assert stored == ["7", "8", "9"]


def test_a_gzipped_csv_with_a_symbol_list_is_read(
    db: sessionmaker[Session], tmp_path: Path
) -> None:
    text = (
        "id,headline,symbols,published_at,url\n"
        f'10,"Apple, Microsoft team up","AAPL; MSFT",{T},https://example.com/10\n'
        f"11,,AAPL,{T},\n"
    )
    path = tmp_path / "news.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    report = _import(db, path)
    assert (report.inserted, report.rejected) == (1, 1)
    (reason,) = report.reasons
    assert reason.startswith("line 3: headline: ")
    with db() as session:
        (item,) = session.scalars(select(NewsItem)).all()
        assert item.symbols == ["AAPL", "MSFT"]
        assert item.url == "https://example.com/10"


def test_a_file_that_is_not_news_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("date,symbol,close\n2019-06-03,AAPL,1\n")
    from services.vendors.news_file import read_news_file

    with pytest.raises(DataFileError, match="no headline column"):
        list(read_news_file(path, source="file"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataFileError, match=r"unsupported file type \(use \.jsonl"):
        list(read_news_file(tmp_path / "notes.txt", source="file"))


def test_a_read_as_of_a_moment_sees_only_what_was_known_by_then(
    db: sessionmaker[Session], tmp_path: Path
) -> None:
    rows = [
        _item("a", received_at="2019-06-03T13:30:02+00:00"),
        _item("b", symbols=["MSFT"], received_at="2019-06-03T14:00:00+00:00"),
        _item("c", received_at="2019-06-03T15:00:00+00:00"),  # known after the moment
        _item("d", received_at=None, published_at="2019-06-03T13:00:00+00:00"),
    ]
    _import(db, _jsonl(tmp_path / "news.jsonl", rows))
    moment = datetime(2019, 6, 3, 14, 30, tzinfo=UTC)
    with db() as session:
        seen = [n.source_id for n in news_as_of(session, moment)]
        assert seen == ["b", "a", "d"]  # newest known first; c is not known yet
        apple = [n.source_id for n in news_as_of(session, moment, symbols=["AAPL"])]
        assert apple == ["a", "d"]
        since = news_as_of(session, moment, since=datetime(2019, 6, 3, 13, 30, tzinfo=UTC))
        assert [n.source_id for n in since] == ["b", "a"]
        later = news_as_of(session, datetime(2019, 6, 3, 15, 0, tzinfo=UTC), symbols=["AAPL"])
        assert [n.source_id for n in later] == ["c", "a", "d"]


def test_an_item_naming_an_instrument_and_others_is_kept_joined_to_the_instrument(
    db: sessionmaker[Session], tmp_path: Path
) -> None:
    rows = [_item("1", symbols=["AAPL", "SPY", "BTCUSD"]), _item("2", symbols=["SPY"])]
    report = _import(db, _jsonl(tmp_path / "mixed.jsonl", rows))
    assert (report.inserted, report.partly_joined, report.rejected) == (1, 1, 1)
    assert report.reasons == ["line 2: not an instrument: SPY"]
    with db() as session:
        (item,) = session.scalars(select(NewsItem)).all()
        assert item.symbols == ["AAPL", "SPY", "BTCUSD"]  # what the source said
        joined = session.scalars(select(NewsSymbol.symbol)).all()
        assert joined == ["AAPL"]  # what can be joined
        assert [n.source_id for n in news_as_of(session, FAR, symbols=["AAPL"])] == ["1"]
    again = _import(db, _jsonl(tmp_path / "mixed.jsonl", rows))
    assert (again.inserted, again.unchanged) == (0, 1)


def test_aitrader_data_news_imports_and_says_what_it_refused(aitrader: Any, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "news.jsonl", [_item("1"), _item("2", symbols=["NOPE"])])
    code, out = aitrader("data", "news", str(path), "--dry-run")
    assert code == 0, out
    assert "2 read, 1 new (dry run: none written), 0 unchanged, 1 rejected" in out
    code, out = aitrader("data", "news", str(path), "--source", "archive")
    assert code == 0, out
    assert "2 read, 1 new, 0 unchanged, 1 rejected" in out
    assert "rejected line 2: not an instrument: NOPE" in out
    code, out = aitrader("data", "news", str(path), "--source", "archive")
    assert "0 new, 1 unchanged, 1 rejected" in out
    code, out = aitrader("data", "news", str(tmp_path / "missing.jsonl"))
    assert code != 0
    assert "no such file" in out
