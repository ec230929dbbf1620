"""`suggestion`: the strategy engine's view on symbols as of a past (or the last) close.

For each symbol, from its daily bars known at `as_of`'s close:

* the pattern engine replays the last `lookback_days` of bars; the newest
  signal within `recent_bars` of `as_of` is the signal input (none: the models
  and sentiment speak alone, and `degraded` says so);
* the active models score the window that ends at `as_of`;
* the symbol's news sentiment at that close (items known by then) is the
  sentiment input, when it has any scored news;
* the inputs are combined exactly as the realtime engine combines them
  (realtime/strategy/scoring.py) and written to the suggestions table, one per
  symbol and day (a rerun for the same day adds nothing).

Point in time: nothing after `as_of`'s close is read (`bars_frame`).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from db.engine import make_engine, make_read_session_factory, make_session_factory, unit_of_work
from db.queries.suggestions import insert_suggestions
from flows.bars import Bars, load_bars
from flows.job_hooks import JOB_HOOKS, record_result
from flows.model_runners import ActiveModel, active_models
from models.suggestions import SuggestionOut
from realtime.patterns.config import PatternConfig
from realtime.strategy.scoring import Weights, combine, read_answer, signal_value
from services.settings import Settings, get_settings
from tasks.pattern_scan import Found, scan_bars
from tasks.sentiment import sentiment_as_of, sentiment_params

NO_SIGNAL = "none"


@task(name="score-symbols", cache_policy=NO_CACHE)
def score_symbols(bars: Bars, recent_bars: int, job_id: int | None) -> list[SuggestionOut]:
    models = active_models()
    window = max((m.window for m in models.values()), default=0)
    found = scan_bars(bars.frame, PatternConfig(), horizon=1)
    close = bars.frame.pivot(index="ts", columns="symbol", values="close").sort_index()
    volume = bars.frame.pivot(index="ts", columns="symbol", values="volume").reindex_like(close)
    stamps = pd.DatetimeIndex(close.index)
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps
    settings = get_settings()
    weights = Weights(**settings.strategy_weights)
    moods = _sentiment_at_closes(close, stamps, settings)
    out = []
    for j, symbol in enumerate(str(s) for s in close.columns):
        known = np.flatnonzero(np.isfinite(close.iloc[:, j].to_numpy()))
        if known.size == 0:
            continue
        last = int(known[-1])
        recent = [
            f for f in found.signals
            if f.symbol == symbol and f.ts >= stamps[max(0, last - recent_bars + 1)]
        ]  # fmt: skip
        ticks = (
            np.stack(
                [close.iloc[: last + 1, j].to_numpy(), volume.iloc[: last + 1, j].to_numpy()],
                axis=1,
            )[-window:]
            if window
            else np.empty((0, 2))
        )
        out.append(
            _suggest(symbol, stamps[last], recent[-1] if recent else None, ticks, models,
                     weights, job_id, moods.get(symbol))
        )  # fmt: skip
    return out


def _sentiment_at_closes(
    close: pd.DataFrame, stamps: pd.DatetimeIndex, settings: Settings
) -> dict[str, float]:
    """Each symbol's news sentiment at its last bar's close (items known by then only)."""
    last: dict[datetime, list[str]] = {}
    for j, symbol in enumerate(str(s) for s in close.columns):
        known = np.flatnonzero(np.isfinite(close.iloc[:, j].to_numpy()))
        if known.size:
            end = stamps[int(known[-1])].to_pydatetime() + timedelta(days=1)  # a daily bar
            last.setdefault(end, []).append(symbol)
    params = sentiment_params(settings)
    moods: dict[str, float] = {}
    engine = make_engine(settings.database_url)
    try:
        with make_read_session_factory(engine)() as session:
            for end, symbols in last.items():
                report = sentiment_as_of(session, symbols, end, params)
                moods.update({f.symbol: f.score for f in report.symbols if f.score is not None})
    finally:
        engine.dispose()
    return moods


def _suggest(
    symbol: str,
    as_of: pd.Timestamp,
    signal: Found | None,
    ticks: np.ndarray[Any, Any],
    models: dict[str, ActiveModel],
    weights: Weights,
    job_id: int | None,
    sentiment: float | None = None,
) -> SuggestionOut:
    values: dict[str, float | None] = {"sentiment": sentiment}
    inputs: dict[str, Any] = {
        "source": {"job_id": job_id, "as_of": as_of.isoformat()},
        "sentiment": sentiment,
    }
    missing = []
    if signal is not None:
        values["signal"] = signal_value(signal.kind, signal.side, signal.score)
        score = signal.score if math.isfinite(signal.score) else None
        inputs["signal"] = {"kind": signal.kind, "side": signal.side, "score": score}
    else:
        missing.append("no pattern signal in the recent bars")
    full = ticks.shape[0] > 0 and np.all(np.isfinite(ticks))
    horizon = None
    for name, model in models.items():
        if not full or ticks.shape[0] < model.window:
            missing.append(f"{name}: fewer than {model.window} complete bars")
            continue
        scores = model.run(ticks[None, :, :])[0]
        values[name], inputs[name] = read_answer(
            name, model.version, model.window, model.horizon, scores, ticks
        )
        horizon = horizon or model.horizon
    if not models:
        missing.append("no active model (a `training` job makes one)")
    scored = combine(values, weights)
    return SuggestionOut(
        symbol=symbol,
        ts=as_of.to_pydatetime(),
        signal_kind=signal.kind if signal else NO_SIGNAL,
        signal_ts=(signal.ts if signal else as_of).to_pydatetime(),
        direction=scored.direction,
        score=scored.score,
        confidence=scored.confidence,
        horizon=horizon,
        contributions=scored.contributions,
        inputs=inputs,
        degraded="; ".join(missing) or None,
    )


@flow(name="suggestion", retries=0, **JOB_HOOKS)
def suggestion(
    symbols: list[str] | None = None,
    as_of: date | None = None,
    recent_bars: int = 5,
    lookback_days: int = 400,
    job_id: int | None = None,
) -> dict[str, Any]:
    """Suggestions for `symbols` (default every stored one) as of `as_of`'s close."""
    start = as_of - timedelta(days=lookback_days) if as_of else None
    bars = load_bars(symbols, start, as_of)
    if start is None:  # the stored range's end: look back from there
        bars = load_bars(symbols, bars.end - timedelta(days=lookback_days), bars.end)
    made = score_symbols(bars, recent_bars, job_id)
    engine = make_engine(get_settings().database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            new = insert_suggestions(session, [s.model_dump(exclude={"id"}) for s in made])
    finally:
        engine.dispose()
    get_run_logger().info("%d suggestions as of %s, %d new", len(made), bars.end, new)
    summary = {
        "as_of": bars.end.isoformat(),
        "written": new,
        "suggestions": [
            {
                "symbol": s.symbol,
                "direction": s.direction,
                "score": round(s.score, 4) if math.isfinite(s.score) else None,
                "signal_kind": s.signal_kind,
                "degraded": s.degraded,
            }
            for s in made
        ],
    }
    record_result(job_id, "suggested", summary)
    return summary
