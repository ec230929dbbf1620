"""Replay: bars come back as ticks in order, paced by their timestamps over `speed`, gaps capped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from models.enums import Timeframe
from models.market_data import Tick
from realtime.sources.base import MarketDataSource
from realtime.sources.replay import ReplaySource
from tasks.import_bars import import_bar_file
from tests.factories import bar_row, write_bar_csv

# The shared 1-minute layout: no symbol column, date and time apart.
MINUTES = """\
date,time,open,high,low,close,volume,open_interest
2006-01-02,09:01:00,3602.00,3603.00,3597.00,3599.00,5699,0
2006-01-02,09:02:00,3600.00,3601.00,3598.00,3599.50,894,0
2006-01-02,09:03:00,3599.50,3604.00,3599.00,3603.00,120,0
2006-01-02,09:05:00,3603.00,3603.00,3601.00,3602.00,46,0
2006-01-03,09:01:00,3610.00,3612.00,3608.00,3611.00,349,0
"""


def minute_file(tmp_path: Path, text: str = MINUTES) -> Path:
    path = tmp_path / "future_1min.csv"
    path.write_text(text)
    return path


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2006, 1, day, hour, minute, tzinfo=UTC)


def test_a_file_replays_in_order_with_gaps_over_speed_and_long_gaps_capped(tmp_path: Path) -> None:
    source = ReplaySource.from_file(
        minute_file(tmp_path), timeframe=Timeframe.M1, symbol="FUT", speed=60, max_gap_s=5
    )
    delays, ticks = zip(*source.schedule(), strict=True)
    assert list(delays) == [0.0, 1.0, 1.0, 2.0, 5.0]  # a minute is a second; overnight is cut
    assert [t.ts for t in ticks] == [
        at(2, 9, 1),
        at(2, 9, 2),
        at(2, 9, 3),
        at(2, 9, 5),
        at(3, 9, 1),
    ]  # the original bar stamps
    assert [t.price for t in ticks] == [3599.0, 3599.5, 3603.0, 3602.0, 3611.0]
    assert [t.size for t in ticks] == [5699, 894, 120, 46, 349]
    assert source.symbols == frozenset({"FUT"})
    as_protocol: MarketDataSource = source  # mypy checks the protocol
    assert as_protocol.name == "replay"


def test_ohlc_mode_spreads_four_ticks_over_each_bar(tmp_path: Path) -> None:
    source = ReplaySource.from_file(
        minute_file(tmp_path), timeframe=Timeframe.M1, symbol="FUT", speed=60, ohlc=True
    )
    three_bars = list(islice(source.schedule(), 12))
    assert [d for d, _ in three_bars] == [0.0] + [0.25] * 11
    assert [t.ts for _, t in three_bars[:4]] == [
        at(2, 9, 1) + timedelta(seconds=s) for s in (0, 15, 30, 45)
    ]
    # A down bar goes open, high, low, close; an up bar open, low, high, close.
    assert [t.price for _, t in three_bars[:4]] == [3602.0, 3603.0, 3597.0, 3599.0]
    assert [t.price for _, t in three_bars[8:]] == [3599.5, 3599.0, 3604.0, 3603.0]
    assert sum(t.size for _, t in three_bars[:4]) == 5699


def test_rows_without_a_usable_time_or_price_are_skipped(tmp_path: Path) -> None:
    broken = MINUTES.replace("3599.50,894", ",894").replace("2006-01-02,09:05:00", "not a date,")
    source = ReplaySource.from_file(
        minute_file(tmp_path, broken), timeframe=Timeframe.M1, symbol="FUT", speed=60
    )
    assert [t.ts for _, t in source.schedule()] == [at(2, 9, 1), at(2, 9, 3), at(3, 9, 1)]


def test_a_database_replay_keeps_bar_order_and_timestamps_and_caps_the_weekend(
    session: Session, tmp_path: Path
) -> None:
    days = ["2020-01-03", "2020-01-06", "2020-01-07", "2020-01-08"]  # Fri, Mon, Tue, Wed
    rows = [
        bar_row(d, s, high="20", close=str(10 + i))
        for i, d in enumerate(days)
        for s in ("BBB", "AAA")
    ]
    import_bar_file(session, write_bar_csv(tmp_path / "daily.csv", rows))
    source = ReplaySource.from_database(
        session,
        ["AAA", "BBB"],
        Timeframe.D1,
        datetime(2020, 1, 3, tzinfo=UTC),
        datetime(2020, 1, 8, tzinfo=UTC),  # exclusive
        speed=86_400,  # a day per second
        max_gap_s=1.5,
    )
    pairs = list(source.schedule())
    assert [(t.symbol, t.ts.date().isoformat(), t.price) for _, t in pairs] == [
        ("AAA", "2020-01-03", 10.0),
        ("BBB", "2020-01-03", 10.0),
        ("AAA", "2020-01-06", 11.0),
        ("BBB", "2020-01-06", 11.0),
        ("AAA", "2020-01-07", 12.0),
        ("BBB", "2020-01-07", 12.0),
    ]
    assert [d for d, _ in pairs] == [0.0, 0.0, 1.5, 0.0, 1.0, 0.0]
    assert all(t.ts.tzinfo is not None and t.ts.utcoffset() == timedelta(0) for _, t in pairs)


def test_a_removed_symbol_is_skipped_and_the_wait_counts_from_the_last_delivered_tick(
    tmp_path: Path,
) -> None:
    rows = "symbol,ts,open,high,low,close\n" + "".join(
        f"{s},2006-01-02T09:0{m}:00Z,1,1,1,1\n" for m, s in enumerate(["A", "B", "A"])
    )
    source = ReplaySource.from_file(minute_file(tmp_path, rows), timeframe=Timeframe.M1, speed=60)
    source.remove_symbol("b")
    assert [(d, t.symbol) for d, t in source.schedule()] == [(0.0, "A"), (2.0, "A")]
    source.add_symbol("B")
    source.add_symbol("NODATA")  # accepted, but there is nothing to replay for it
    assert [t.symbol for _, t in source.schedule()] == ["A", "B", "A"]
    assert source.symbols == frozenset({"A", "B", "NODATA"})


def test_a_looped_replay_moves_forward_by_whole_weeks_each_pass(tmp_path: Path) -> None:
    source = ReplaySource.from_file(
        minute_file(tmp_path), timeframe=Timeframe.M1, symbol="FUT", speed=60, loop=True
    )
    pairs = list(islice(source.schedule(), 12))
    first, second = [t for _, t in pairs[:5]], [t for _, t in pairs[5:10]]
    assert [t.ts - timedelta(days=7) for t in second] == [t.ts for t in first]
    assert [t.price for t in second] == [t.price for t in first]
    assert pairs[5][0] == 5.0  # the wrap is a long gap, capped
    assert pairs[10][1].ts == first[0].ts + timedelta(days=14)


def test_run_at_high_speed_delivers_every_tick_then_stops_running(tmp_path: Path) -> None:
    source = ReplaySource.from_file(
        minute_file(tmp_path), timeframe=Timeframe.M1, symbol="FUT", speed=6_000, max_gap_s=0.05
    )

    async def scenario() -> list[Tick]:
        ticks: list[Tick] = []
        await source.start(ticks.append)
        assert source.running
        with pytest.raises(RuntimeError, match="already running"):
            await source.start(ticks.append)
        for _ in range(200):
            if not source.running:
                break
            await asyncio.sleep(0.01)
        await source.stop()  # safe after the end
        return ticks

    assert asyncio.run(scenario()) == [t for _, t in source.schedule()]
    assert not source.running


def test_stop_ends_a_looped_replay_and_no_tick_follows(tmp_path: Path) -> None:
    source = ReplaySource.from_file(
        minute_file(tmp_path),
        timeframe=Timeframe.M1,
        symbol="FUT",
        speed=6_000,  # a minute is 10 ms
        max_gap_s=0.05,
        loop=True,
    )

    async def scenario() -> tuple[int, int, list[str]]:
        ticks: list[Tick] = []
        await source.start(ticks.append)
        await asyncio.sleep(0.1)
        await source.stop()
        at_stop = len(ticks)
        await asyncio.sleep(0.05)
        return at_stop, len(ticks), [t.get_name() for t in asyncio.all_tasks()]

    at_stop, later, tasks = asyncio.run(scenario())
    assert at_stop == later >= 3
    assert not source.running
    assert "replay" not in tasks
