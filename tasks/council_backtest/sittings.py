"""The days a council backtest sits: the last stored trading day of each week or month.

A sitting decides on its day's close, as the weekly council does on Friday's;
the last day with bars in each calendar week (a holiday Friday moves it to
Thursday) or month, from the panel's own dates, so no sitting falls on a day
with nothing to read.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

import numpy as np
import pandas as pd

Rebalance = Literal["weekly", "monthly"]


def sitting_bars(
    dates: pd.DatetimeIndex, start: date, end: date, rebalance: Rebalance
) -> list[int]:
    """Indexes into `dates` of every sitting from `start` to `end`, in order. A period sits
    on its last stored day, and only if it ends inside the range (by its last weekday): a
    half week is not a week. Holidays at a period's end move the sitting earlier."""
    naive = dates.tz_convert(None) if dates.tz is not None else dates
    spans = naive.to_period("W-SUN" if rebalance == "weekly" else "M")
    periods = [str(p) for p in spans]
    days = np.array([d.date() for d in naive])
    inside: list[int] = np.flatnonzero((days >= start) & (days <= end)).tolist()
    bars: list[int] = []
    for k, t in enumerate(inside):
        following = t + 1
        if k + 1 < len(inside) and periods[inside[k + 1]] == periods[t]:
            continue  # not the period's last stored day
        if following < len(dates) and periods[following] == periods[t]:
            continue  # the period goes on past `end`: not a whole one
        if end < _last_weekday(spans[t].end_time.date()):
            continue  # `end` cuts the period short (the bars after it are not read)
        bars.append(t)
    return bars


def _last_weekday(day: date) -> date:
    """`day`, or the Friday before it when it falls on a weekend."""
    return day - timedelta(days=max(0, day.weekday() - 4))
