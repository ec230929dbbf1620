"""Small builders with defaults, so each test states only what it is about."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Sequence
from pathlib import Path

HEADER = ["date", "symbol", "open", "high", "low", "close", "adj_close", "volume"]


def bar_row(
    date: str = "2020-01-02",
    symbol: str = "AAA",
    open: str = "10",
    high: str = "11",
    low: str = "9",
    close: str = "10.5",
    adj_close: str = "10.4",
    volume: str = "1000",
) -> list[str]:
    return [date, symbol, open, high, low, close, adj_close, volume]


def write_bar_csv(
    path: Path, rows: Sequence[Sequence[str]], header: Sequence[str] = HEADER
) -> Path:
    """Write a daily-shape CSV (gzipped if the name ends in .gz)."""
    with (
        gzip.open(path, "wt", newline="")
        if path.name.endswith(".gz")
        else path.open("w", newline="")
    ) as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path
