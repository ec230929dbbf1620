"""Decide which rows of a bar file may enter the database, and say why the rest may not.

Rules, applied in this order; a row is rejected for the first rule it breaks:

1. `bad_symbol`          — empty, or not a valid ticker.
2. `bad_timestamp`       — unparsable, or a local time that DST makes ambiguous.
3. `misaligned_timestamp`— an intraday stamp not on its timeframe's grid (10:00:30 for 1m).
4. `bad_number`          — a price missing or not a number.
5. `non_positive_price`  — any of open/high/low/close <= 0 (the zero bar in the S&P file).
6. `high_below_low`
7. `open_outside_range`  — open not within [low, high].
8. `close_outside_range` — close not within [low, high].
9. `bad_volume`          — volume missing, not a number, or negative.

Then duplicates of one (symbol, ts) among the remaining rows: identical
copies collapse into one. Copies that disagree are resolved by the
`ConflictRule`: `reject` (the default) drops every copy, because we cannot
know which is true and a trading system must not guess; `first`/`last` keep
that copy in file order, for users who trust their file's order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from models.enums import ConflictRule as ConflictRule  # declared there for the CLI
from models.enums import Timeframe
from models.market import SYMBOL_PATTERN, RejectedRow

MAX_EXAMPLES = 10
VALUE_COLUMNS = ["open", "high", "low", "close", "adj_close", "volume"]


@dataclass(frozen=True)
class ValidatedBars:
    """The rows that may be written, and the account of those that may not."""

    valid: pd.DataFrame
    rejected: dict[str, int]
    examples: list[RejectedRow]
    duplicates_collapsed: int


def validate_bars(
    frame: pd.DataFrame, timeframe: Timeframe, on_conflict: ConflictRule = ConflictRule.REJECT
) -> ValidatedBars:
    """Apply the module's rules to a frame from `read_bar_file`. Pure: no I/O."""
    reason = pd.Series(pd.NA, index=frame.index, dtype="string")

    def flag(mask: pd.Series, name: str) -> None:
        reason.loc[mask.fillna(True).astype(bool) & reason.isna()] = name

    o, h, lo, c, v = (frame[k] for k in ("open", "high", "low", "close", "volume"))
    flag(~frame["symbol"].astype(str).str.fullmatch(SYMBOL_PATTERN, flags=re.ASCII), "bad_symbol")
    flag(frame["ts"].isna(), "bad_timestamp")
    if timeframe is not Timeframe.D1:
        step = pd.Timedelta(timeframe.duration)
        flag(frame["ts"].dt.floor(step) != frame["ts"], "misaligned_timestamp")
    flag(o.isna() | h.isna() | lo.isna() | c.isna(), "bad_number")
    flag((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "non_positive_price")
    flag(h < lo, "high_below_low")
    flag((o < lo) | (o > h), "open_outside_range")
    flag((c < lo) | (c > h), "close_outside_range")
    flag(v.isna() | (v < 0), "bad_volume")

    ok = frame[reason.isna()]
    keys = ["symbol", "ts"]
    identical = ok.duplicated(subset=keys + VALUE_COLUMNS, keep="first")
    collapsed = int(identical.sum())
    ok = ok[~identical]
    clash = ok.duplicated(subset=keys, keep=False)
    if clash.any():
        if on_conflict is ConflictRule.REJECT:
            reason.loc[ok.index[clash]] = "conflicting_duplicate"
            ok = ok[~clash]
        else:
            keep: Literal["first", "last"] = (
                "first" if on_conflict is ConflictRule.FIRST else "last"
            )
            loser = ok.duplicated(subset=keys, keep=keep)
            reason.loc[ok.index[loser]] = "conflicting_duplicate"
            ok = ok[~loser]

    bad = frame[reason.notna()]
    counts = reason.dropna().value_counts()
    first_bad = bad.head(MAX_EXAMPLES)
    examples = [
        RejectedRow(
            line=int(line),
            symbol=None if pd.isna(symbol) else str(symbol),
            ts=None if pd.isna(ts) else ts.isoformat(),
            reason=str(why),
        )
        for line, symbol, ts, why in zip(
            first_bad["line"],
            first_bad["symbol"],
            first_bad["ts"],
            reason[first_bad.index],
            strict=True,
        )
    ]
    return ValidatedBars(
        valid=ok.reset_index(drop=True),
        rejected={str(k): int(n) for k, n in counts.items()},
        examples=examples,
        duplicates_collapsed=collapsed,
    )
