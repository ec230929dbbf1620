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


def write_bar_csv(path: Path, rows: Sequence[Sequence[str]], header: Sequence[str] = HEADER) -> Path:
    """Write a daily-shape CSV (gzipped if the name ends in .gz)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as fh:  # type: ignore[operator]
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path
