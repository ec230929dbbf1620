"""Reading bar files: layouts, timezones and the errors a user sees."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from models.enums import Timeframe
from models.errors import DataFileError
from services.vendors.bar_file import read_bar_file
from tests.factories import bar_row, write_bar_csv


def test_daily_shape_reads_symbol_time_and_prices(tmp_path: Path) -> None:
    path = write_bar_csv(tmp_path / "d.csv.gz", [bar_row(symbol="aapl", date="2019-06-07")])
    frame = read_bar_file(path, timeframe=Timeframe.D1)
    row = frame.iloc[0]
    assert row.symbol == "AAPL"
    assert row.ts == pd.Timestamp("2019-06-07", tz="UTC")
    assert (row.open, row.high, row.low, row.close, row.adj_close, row.volume) == (
        10,
        11,
        9,
        10.5,
        10.4,
        1000,
    )
    assert row.line == 2


def test_minute_shape_takes_fixed_symbol_and_converts_local_time(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "date,time,open,high,low,close,volume,open_interest\n2006-01-02,09:01:00,3602,3603,3597,3599,5699,0\n"
    )
    frame = read_bar_file(path, timeframe=Timeframe.M1, symbol="fdax", tz="Europe/Berlin")
    assert frame.iloc[0].symbol == "FDAX"
    assert frame.iloc[0].ts == pd.Timestamp("2006-01-02 08:01", tz="UTC")
    assert pd.isna(frame.iloc[0].adj_close)


def test_nonexistent_local_time_becomes_missing_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "dst.csv"
    # 02:30 on 2021-03-28 does not exist in Berlin (clocks jump 02:00 -> 03:00).
    path.write_text(
        "timestamp,open,high,low,close\n2021-03-28 02:30:00,1,1,1,1\n2021-03-28 03:30:00,1,1,1,1\n"
    )
    frame = read_bar_file(path, timeframe=Timeframe.M1, symbol="X", tz="Europe/Berlin")
    assert frame.ts.isna().tolist() == [True, False]


def test_parquet_with_typed_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    pd.DataFrame(
        {
            "Symbol": ["msft"],
            "Timestamp": pd.to_datetime(["2020-01-02 14:30"]).tz_localize("UTC"),
            "Open": [1.0],
            "High": [2.0],
            "Low": [0.5],
            "Close": [1.5],
            "Volume": [7],
        }
    ).to_parquet(path)
    frame = read_bar_file(path, timeframe=Timeframe.M1)
    assert frame.iloc[0].symbol == "MSFT"
    assert frame.iloc[0].ts == pd.Timestamp("2020-01-02 14:30", tz="UTC")


def test_custom_symbol_column(tmp_path: Path) -> None:
    path = write_bar_csv(
        tmp_path / "t.csv",
        [bar_row(symbol="KO")],
        header=["date", "ticker", "open", "high", "low", "close", "adj_close", "volume"],
    )
    assert (
        read_bar_file(path, timeframe=Timeframe.D1, symbol_column="Ticker").iloc[0].symbol == "KO"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("date,symbol,price\n2020-01-01,A,1\n", "missing column"),
        ("symbol,open,high,low,close\nA,1,1,1,1\n", "no time column"),
        ("date,open,high,low,close\n2020-01-01,1,1,1,1\n", "--symbol"),
        ("", "cannot read"),
    ],
)
def test_unknown_layouts_fail_with_the_cause(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataFileError, match=message):
        read_bar_file(path, timeframe=Timeframe.D1)


def test_missing_file_and_wrong_type_and_corrupt_gzip(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file"):
        read_bar_file(tmp_path / "nope.csv", timeframe=Timeframe.D1)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataFileError, match="unsupported file type"):
        read_bar_file(tmp_path / "x.json", timeframe=Timeframe.D1)
    (tmp_path / "x.csv.gz").write_bytes(b"this is not gzip")
    with pytest.raises(DataFileError, match="cannot read"):
        read_bar_file(tmp_path / "x.csv.gz", timeframe=Timeframe.D1)
    body = "".join(f"2020-01-01,S{i},{i},{i + 1},{i},{i},{i * 7}\n" for i in range(1, 5000))
    whole = gzip.compress(("date,symbol,open,high,low,close,volume\n" + body).encode())
    (tmp_path / "t.csv.gz").write_bytes(whole[: len(whole) // 2])  # an interrupted download
    with pytest.raises(DataFileError, match="cannot read"):
        read_bar_file(tmp_path / "t.csv.gz", timeframe=Timeframe.D1)


def test_unknown_timezone_is_reported(tmp_path: Path) -> None:
    path = write_bar_csv(tmp_path / "d.csv", [bar_row()])
    with pytest.raises(DataFileError, match="unknown timezone"):
        read_bar_file(path, timeframe=Timeframe.D1, tz="Mars/Olympus")
