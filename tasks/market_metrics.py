"""Market metrics for the dashboard: N-calendar-day returns and the return correlations.

The snapshot's returns count trading bars (its `ret_7d` spans seven sessions,
about a week and a half); a person asking for "the week's return" means
calendar days. Here the N-day return is the last close known at `as_of` over
the last close known N calendar days earlier, both read through `bars_as_of`
(point in time: a bar counts once its close is known). The correlation
matrix is the snapshot's own, over the last `window` daily returns, so the
dashboard and the council see the same figure. No clock: a date means the
end of that day, as everywhere in db/queries/bars.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from db.queries.bars import bars_as_of, knowledge_cutoff
from models.enums import Timeframe
from models.market import BarOut
from models.snapshot import MarketMetrics, PeriodReturn
from tasks.market_snapshot import PLACES, build_snapshot

BASE_SEARCH = timedelta(days=14)
"""How far before the base instant to look for its last close: longer than any market
closure (weekends, holidays, the four sessions after 9/11), short enough to read few bars."""


def market_metrics(
    session: Session, universe: Sequence[str], as_of: date | datetime, *, days: int, window: int
) -> MarketMetrics:
    """`days`-day returns and the `window`-return correlation of `universe` at `as_of`."""
    snapshot = build_snapshot(
        session, universe, as_of, lookback_bars=window + 1, corr_window=window
    )
    instant = snapshot.as_of
    bars = bars_as_of(session, snapshot.universe, instant, timedelta(days=days) + BASE_SEARCH)
    return MarketMetrics(
        as_of=instant,
        days=days,
        returns=period_returns(bars, snapshot.universe, instant, days),
        correlation=snapshot.correlation,
        missing=snapshot.missing,
        data_hash=snapshot.data_hash,
    )


def period_returns(
    bars: Sequence[BarOut], symbols: Sequence[str], as_of: datetime, days: int
) -> list[PeriodReturn]:
    """Per symbol (in the order given), the close known at `as_of` over the one known
    `days` before. `bars` must all be known at `as_of`; daily bars only."""
    base_cutoff = knowledge_cutoff(as_of - timedelta(days=days), Timeframe.D1)
    by_symbol: dict[str, list[BarOut]] = {}
    for bar in sorted(bars, key=lambda b: b.ts):
        by_symbol.setdefault(bar.symbol, []).append(bar)
    out = []
    for symbol in symbols:
        own = by_symbol.get(symbol, [])
        last = own[-1] if own else None
        base = next((b for b in reversed(own) if b.ts <= base_cutoff), None)
        out.append(
            PeriodReturn(
                symbol=symbol,
                close=last.close if last else None,
                last_bar=last.ts if last else None,
                base_close=base.close if base else None,
                base_bar=base.ts if base else None,
                ret=_ret(last.close, base.close) if last and base else None,
            )
        )
    return out


def _ret(close: Decimal, base: Decimal) -> float | None:
    if base == 0:
        return None
    value = float(close / base) - 1
    return round(value, PLACES) + 0.0 if math.isfinite(value) else None
