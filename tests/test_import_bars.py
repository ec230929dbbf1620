"""Importing into the database: counts, idempotency, updates, and all-or-nothing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.queries.bar_coverage import bar_coverage
from db.queries.bars import upsert_bars
from models.enums import Timeframe
from models.market import Bar, Instrument
from models.ops import AuditEvent
from services.vendors.bar_file import read_bar_file
from tasks.import_bars import import_bar_file, import_bar_file_beside_writers
from tasks.import_instruments import import_instrument_file
from tests.conftest import SAMPLE_DATA
from tests.factories import bar_row, write_bar_csv


def _bars(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Bar)) or 0


def test_import_counts_rejects_and_writes_the_rest(session: Session, tmp_path: Path) -> None:
    path = write_bar_csv(
        tmp_path / "b.csv",
        [
            bar_row(symbol="AAA"),
            bar_row(symbol="BBB", date="2020-01-03"),
            bar_row(symbol="CCC", close="0"),
        ],
    )
    report = import_bar_file(session, path)
    assert (report.rows_read, report.rows_valid, report.inserted) == (3, 2, 2)
    assert report.rejected == {"non_positive_price": 1}
    assert report.instruments_created == 2
    assert _bars(session) == 2
    bar = session.scalars(select(Bar).where(Bar.symbol == "AAA")).one()
    assert (bar.open, bar.close, bar.adj_close, bar.volume) == (
        Decimal(10),
        Decimal("10.5"),
        Decimal("10.4"),
        Decimal(1000),
    )
    assert session.scalars(select(AuditEvent)).one().event == "bars.imported"


def test_reimport_changes_nothing_and_edits_are_updates(session: Session, tmp_path: Path) -> None:
    rows = [bar_row(date=f"2020-01-{d:02d}") for d in range(2, 9)]
    path = write_bar_csv(tmp_path / "b.csv", rows)
    import_bar_file(session, path)
    again = import_bar_file(session, path)
    assert (again.inserted, again.updated, again.unchanged, again.changes) == (0, 0, 7, 0)

    rows[3] = bar_row(date="2020-01-05", close="10.75")
    rows.append(bar_row(date="2020-01-09"))
    edited = import_bar_file(session, write_bar_csv(tmp_path / "b2.csv", rows))
    assert (edited.inserted, edited.updated, edited.unchanged) == (1, 1, 6)
    changed = session.scalars(select(Bar).where(Bar.close == Decimal("10.75"))).one()
    assert changed.ts.day == 5


def test_missing_adj_close_counts_as_a_change_when_it_appears(
    session: Session, tmp_path: Path
) -> None:
    header = ["date", "symbol", "open", "high", "low", "close", "volume"]
    write_bar_csv(
        tmp_path / "a.csv", [["2020-01-02", "AAA", "10", "11", "9", "10.5", "5"]], header=header
    )
    import_bar_file(session, tmp_path / "a.csv")
    report = import_bar_file(session, write_bar_csv(tmp_path / "b.csv", [bar_row()]))
    assert report.updated == 1  # NULL -> 10.4 is a change (NULL-safe comparison)


def test_a_bar_written_through_the_orm_matches_the_same_bar_imported(
    session: Session, tmp_path: Path
) -> None:
    """The bulk path formats values itself; they must equal what the ORM stores."""
    session.add(Instrument(symbol="AAA"))
    session.flush()
    session.add(
        Bar(
            symbol="AAA",
            timeframe=Timeframe.D1,
            ts=datetime(2020, 1, 2, tzinfo=UTC),
            open=Decimal(10),
            high=Decimal(11),
            low=Decimal(9),
            close=Decimal("10.5"),
            adj_close=Decimal("10.4"),
            volume=Decimal(1000),
        )
    )
    session.flush()
    report = import_bar_file(session, write_bar_csv(tmp_path / "b.csv", [bar_row()]))
    assert (report.inserted, report.updated, report.unchanged) == (0, 0, 1)


def test_dry_run_writes_nothing(session: Session, tmp_path: Path) -> None:
    report = import_bar_file(session, write_bar_csv(tmp_path / "b.csv", [bar_row()]), dry_run=True)
    assert report.rows_valid == 1
    assert report.inserted == 0
    assert _bars(session) == 0
    assert session.scalar(select(func.count()).select_from(Instrument)) == 0


def test_failure_mid_write_leaves_nothing_behind(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One file is one transaction: an interruption after the first batch rolls all of it back."""
    monkeypatch.setattr("db.queries.bars.BATCH_ROWS", 3)
    path = write_bar_csv(
        tmp_path / "b.csv", [bar_row(date=f"2020-01-{d:02d}") for d in range(1, 11)]
    )

    def interrupt(stage: str, done: int, _total: int) -> None:
        if stage == "writing" and done >= 3:
            raise KeyboardInterrupt

    nested = session.begin_nested()
    with pytest.raises(KeyboardInterrupt):
        import_bar_file(session, path, progress=interrupt)
    nested.rollback()
    assert _bars(session) == 0
    assert session.scalar(select(func.count()).select_from(Instrument)) == 0
    # and the staging table is gone, so the next import works
    assert import_bar_file(session, path).inserted == 10


def test_minute_file_with_fixed_symbol(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "date,time,open,high,low,close,volume,open_interest\n"
        "2006-01-02,09:01:00,3602.00,3603.00,3597.00,3599.00,5699,0\n"
        "2006-01-02,09:02:00,3600.00,3601.00,3598.00,3599.00,894,0\n"
    )
    report = import_bar_file(
        session, path, timeframe=Timeframe.M1, symbol="FDAX", tz="Europe/Berlin"
    )
    assert report.inserted == 2
    (cov,) = bar_coverage(session, ["FDAX"])
    assert cov.timeframe is Timeframe.M1
    assert (cov.first.hour, cov.first.minute, cov.bars) == (8, 1, 2)


def test_bundled_sample_imports_with_its_real_defects(session: Session) -> None:
    counts = import_instrument_file(session, SAMPLE_DATA / "sp500_sectors_sample.csv")
    assert counts.created == 28
    report = import_bar_file(session, SAMPLE_DATA / "sp500_daily_sample.csv.gz")
    assert report.symbols == 30
    assert report.rejected == {
        "conflicting_duplicate": 2,
        "non_positive_price": 1,
        "open_outside_range": 1,
    }
    assert report.inserted == report.rows_valid == report.rows_read - 4
    aapl = session.scalars(select(Instrument).where(Instrument.symbol == "AAPL")).one()
    assert aapl.sector == "Information Technology"
    again = import_instrument_file(session, SAMPLE_DATA / "sp500_sectors_sample.csv")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 28)


@pytest.mark.slow
def test_whole_shared_file_imports_beside_a_writer(
    migrated_db_url: str, shared_daily_file: Path
) -> None:
    """What `aitrader data import` runs, while another writer commits every few milliseconds
    (the realtime server, a council): the writer is never refused, every valid row lands
    once, and the file's real defects are rejected with their reasons."""
    engine = make_engine(migrated_db_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    done = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while not done.is_set():
                with unit_of_work(sessions) as session:
                    session.add(AuditEvent(actor="t", event="tick", entity_type="t", entity_id="1"))
                written.append(1)
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        first = import_bar_file_beside_writers(engine, shared_daily_file)
    finally:
        done.set()
        thread.join()
    assert errors == []
    assert len(written) > 10  # it kept writing all along
    assert first.rows_read == 592_358
    assert first.rejected == {
        "conflicting_duplicate": 4,  # VIAB 2019-12-04 and STI 2019-12-06, two copies each
        "open_outside_range": 2,  # CBOE and DIS on 2020-01-10
        "close_outside_range": 1,  # DXC 2018-06-01
        "non_positive_price": 1,  # the all-zero CBS twin on 2019-12-04
    }
    assert first.inserted == 592_350
    assert first.symbols == 482
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Bar)) == 592_350
        [audit] = session.scalars(select(AuditEvent).where(AuditEvent.event == "bars.imported"))
        assert audit.payload["inserted"] == 592_350
    engine.dispose()  # re-imports change nothing: test_reimport_changes_nothing_and_...


def test_a_database_error_mid_merge_surfaces_as_itself(session: Session, tmp_path: Path) -> None:
    """The merge fails (no instrument for the symbol); the FK error must not be masked."""
    frame = read_bar_file(
        write_bar_csv(tmp_path / "b.csv", [bar_row(symbol="ZZZ")]), timeframe=Timeframe.D1
    )
    nested = session.begin_nested()
    with pytest.raises(IntegrityError) as caught:
        upsert_bars(session, frame, Timeframe.D1)
    assert "foreign key" in str(caught.value).lower()
    nested.rollback()
    assert import_bar_file(session, tmp_path / "b.csv").inserted == 1
