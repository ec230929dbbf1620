"""The stored daily bars a model flow reads: one task, point in time, its range defaulted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from db.engine import make_engine, make_read_session_factory
from db.queries.bar_coverage import bar_coverage
from db.queries.bars import bars_frame
from models.enums import Timeframe
from models.errors import InvalidInputError
from services.settings import get_settings


@dataclass(frozen=True)
class Bars:
    frame: pd.DataFrame
    symbols: list[str]
    start: date
    end: date

    def span(self) -> tuple[datetime, datetime]:
        """The first and last bar's stamps (UTC): what the model learned from, not what was
        asked for."""
        stamps = pd.DatetimeIndex(self.frame["ts"])
        stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
        return stamps.min().to_pydatetime(), stamps.max().to_pydatetime()


@task(name="load-bars", cache_policy=NO_CACHE)
def load_bars(symbols: list[str] | None, start: date | None, end: date | None) -> Bars:
    """Daily bars of `symbols` (default: every stored one) from `start` to `end`, as known
    at `end`'s close; the range defaults to what is stored."""
    engine = make_engine(get_settings().database_url)
    try:
        with make_read_session_factory(engine)() as session:
            coverage = bar_coverage(session, symbols, Timeframe.D1)
            if not coverage:
                raise InvalidInputError("symbols", "no daily bars stored: import some first")
            names = sorted({c.symbol for c in coverage})
            if symbols and (missing := sorted(set(symbols) - set(names))):
                raise InvalidInputError("symbols", f"no daily bars for {', '.join(missing)}")
            first = start or min(c.first for c in coverage).date()
            last = end or max(c.last for c in coverage).date()
            if last <= first:
                raise InvalidInputError("end", f"must be after start ({first}), got {last}")
            frame = bars_frame(session, names, first, last)
    finally:
        engine.dispose()
    return Bars(frame, names, first, last)
