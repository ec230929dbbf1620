"""Read a bar file (CSV, CSV.GZ or Parquet) into one normalised frame.

This module knows file layouts and nothing about validity: every row comes
out, with unparsable values as NaN/NaT, so validation can count and report
them. Layouts recognised (headers are case-insensitive):

* a symbol column (`--symbol-column`, default `symbol`) or a fixed `--symbol`;
* a time given as one column (`timestamp`, `datetime` or `ts`) or as `date`
  plus an optional `time`;
* `open high low close`, and optionally `volume` and `adj_close`.

Naive times are read in the file's timezone (`tz`, UTC by default) and
converted to UTC; a local time that does not exist or is ambiguous (DST
changes) becomes NaT and is rejected, never guessed.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pandas as pd

from models.enums import Timeframe
from models.errors import DataFileError
from services.vendors.paths import BAR_SUFFIXES, require_file

PRICE_COLUMNS = ("open", "high", "low", "close")
TIMESTAMP_COLUMNS = ("timestamp", "datetime", "ts")
ADJ_CLOSE_ALIASES = ("adj_close", "adj close", "adjclose", "adjusted_close")

# The frame every later step receives.
COLUMNS = ["line", "symbol", "ts", "open", "high", "low", "close", "adj_close", "volume"]


def read_bar_file(
    path: Path,
    *,
    timeframe: Timeframe,
    symbol_column: str = "symbol",
    symbol: str | None = None,
    tz: str = "UTC",
) -> pd.DataFrame:
    """Return `COLUMNS`: line (1-based, header is line 1), symbol, ts (UTC), prices, volume."""
    raw = _load(path)
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    columns = set(raw.columns)
    missing = [c for c in PRICE_COLUMNS if c not in columns]
    if missing:
        raise DataFileError(
            f"{path}: unknown layout, missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(raw.columns) or 'none'})"
        )
    out = pd.DataFrame({"line": pd.RangeIndex(2, len(raw) + 2)})
    out["symbol"] = _symbols(raw, path, symbol_column.strip().lower(), symbol)
    out["ts"] = _timestamps(raw, path, timeframe, tz)
    for col in PRICE_COLUMNS:
        out[col] = pd.to_numeric(raw[col], errors="coerce")
    adj = next((c for c in ADJ_CLOSE_ALIASES if c in columns), None)
    out["adj_close"] = pd.to_numeric(raw[adj], errors="coerce") if adj else float("nan")
    out["volume"] = pd.to_numeric(raw["volume"], errors="coerce") if "volume" in columns else 0.0
    return out[COLUMNS]


def _load(path: Path) -> pd.DataFrame:
    require_file(path, BAR_SUFFIXES)
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
            return pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except EOFError:
        raise DataFileError(f"{path}: cannot read: truncated gzip (incomplete download?)") from None
    except (OSError, ValueError, zlib.error, pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataFileError(f"{path}: cannot read: {reason}") from None
    raise DataFileError(f"{path}: unsupported file type (use .csv, .csv.gz or .parquet)")


def _symbols(raw: pd.DataFrame, path: Path, column: str, fixed: str | None) -> pd.Series:
    if fixed is not None:
        return pd.Series(fixed.strip().upper(), index=raw.index, dtype=object)
    if column not in raw.columns:
        raise DataFileError(
            f"{path}: no {column!r} column; name the symbol column with --symbol-column "
            "or give the symbol of a single-instrument file with --symbol"
        )
    return raw[column].astype(str).str.strip().str.upper()


def _timestamps(raw: pd.DataFrame, path: Path, timeframe: Timeframe, tz: str) -> pd.Series:
    column = next((c for c in TIMESTAMP_COLUMNS if c in raw.columns), None)
    if column is not None:
        values = raw[column]
    elif "date" in raw.columns:
        values = raw["date"].astype(str).str.strip()
        if "time" in raw.columns and timeframe is not Timeframe.D1:
            values = values + " " + raw["time"].astype(str).str.strip()
    else:
        raise DataFileError(
            f"{path}: unknown layout, no time column (need one of "
            f"{', '.join((*TIMESTAMP_COLUMNS, 'date'))})"
        )
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values.astype(str).str.strip(), errors="coerce", format="ISO8601")
    if parsed.dt.tz is None:
        try:
            parsed = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        except (KeyError, ValueError) as exc:  # unknown zone name
            raise DataFileError(f"unknown timezone {tz!r}: {exc}") from None
    parsed = parsed.dt.tz_convert("UTC")
    if timeframe is Timeframe.D1:
        # A daily bar is labelled by its session date, stamped at 00:00 UTC of that date.
        parsed = parsed.dt.tz_localize(None).dt.normalize().dt.tz_localize("UTC")
    stamps: pd.Series = parsed.astype("datetime64[us, UTC]")
    return stamps
