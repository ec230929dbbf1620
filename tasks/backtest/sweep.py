"""Parameter grids: expand, split into chunks, score a chunk, pick the winner.

A grid is the cartesian product of the values given per parameter. Stop
levels (`stop_loss`, `take_profit`, `trailing_stop`) may be swept like any
strategy parameter: they are taken out of each set and handed to the engine
as that set's stops. A chunk is scored in one engine call (its sets side by
side as columns) and returns only metrics, so a 5,000-set sweep never holds
5,000 trade lists; the winner is re-run with its trades.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from models.backtest import BacktestConfig, Stops
from models.errors import InvalidInputError
from tasks.backtest.engine import BacktestResult, run_backtest
from tasks.backtest.panel import PricePanel
from tasks.backtest.signals import Params, SignalFunction, Signals, signals_for_grid
from tasks.backtest.strategies import get_strategy, pointless, resolve_params

STOP_PARAMS = ("stop_loss", "take_profit", "trailing_stop")
MAX_GRID = 1_000_000


def expand_grid(params: Mapping[str, float | Sequence[float]]) -> list[dict[str, float]]:
    """Every combination of the given values, the last parameter varying fastest."""
    names = list(params)
    axes: list[list[float]] = []
    for name in names:
        value = params[name]
        values = [float(v) for v in value] if isinstance(value, Sequence) else [float(value)]
        if not values:
            raise ValueError(f"{name}: no values to sweep")
        axes.append(values)
    size = math.prod(len(a) for a in axes)
    if size > MAX_GRID:
        raise ValueError(f"grid of {size:,} parameter sets exceeds {MAX_GRID:,}")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]


CHUNKS_PER_WORKER = 4
MIN_CHUNK = 16


def chunk_size(n_sets: int, limit: int, workers: int) -> int:
    """Sets per chunk: at most `limit`, and small enough for `CHUNKS_PER_WORKER` chunks
    per worker, but not below `MIN_CHUNK` (each chunk is a task and a signal pass).

    With only the limit (500), a 442-set sweep was one chunk: one thread busy and a
    progress bar with nothing to count until the end.
    """
    if limit < 1 or workers < 1:
        raise ValueError(f"chunk limit and workers must be at least 1, got {limit}, {workers}")
    share = math.ceil(n_sets / (workers * CHUNKS_PER_WORKER)) if n_sets else 1
    return min(limit, max(MIN_CHUNK, share))


def chunked(grid: Sequence[dict[str, float]], size: int) -> list[list[dict[str, float]]]:
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    return [list(grid[i : i + size]) for i in range(0, len(grid), size)]


def split_stops(param_set: Mapping[str, float], base: Stops) -> tuple[dict[str, float], Stops]:
    """(the strategy's own parameters, the set's stops: `base` overridden by swept levels)."""
    strategy_params = {k: v for k, v in param_set.items() if k not in STOP_PARAMS}
    overrides = {k: (v if v > 0 else None) for k, v in param_set.items() if k in STOP_PARAMS}
    return strategy_params, base.model_copy(update=overrides) if overrides else base


def run_grid(
    panel: PricePanel,
    fn: SignalFunction,
    grid: Sequence[Mapping[str, float]],
    config: BacktestConfig,
    first: int = 0,
) -> BacktestResult:
    """Every set of `grid` in one engine call (its columns parameter-set major).

    Signals are computed on all of `panel`; the simulation runs on bars
    `first` onwards and starts flat there, so its indicators are warm (the
    earlier bars are history, known at the time) while it trades only later.
    """
    split = [split_stops(p, config.stops) for p in grid]
    strategy_sets: list[Params] = [s for s, _ in split]
    signals = signals_for_grid(fn, panel, strategy_sets)
    stops = [st for _, st in split]
    has_own_stops = any(st != config.stops for st in stops)
    if first:
        panel = panel.between(first, len(panel.dates))
        signals = Signals(
            np.ascontiguousarray(signals.entries[first:]),
            np.ascontiguousarray(signals.exits[first:]),
            _rows_from(signals.short_entries, first),
            _rows_from(signals.short_exits, first),
        )
    return run_backtest(panel, signals, config, set_stops=stops if has_own_stops else None)


def score_grid(
    panel: PricePanel,
    fn: SignalFunction,
    grid: Sequence[Mapping[str, float]],
    config: BacktestConfig,
    first: int = 0,
) -> pd.DataFrame:
    """One row per parameter set: its parameters, then its metrics."""
    table = run_grid(panel, fn, grid, config, first).metrics_table()
    params = pd.DataFrame(list(grid), index=table.index)
    return pd.concat([params, table], axis=1)


def top_rows(table: pd.DataFrame, metric: str, n: int) -> pd.DataFrame:
    """The `n` rows with the highest `metric`, best first (NaN last; ties keep grid order)."""
    return table.sort_values(metric, ascending=False, na_position="last", kind="stable").head(n)


def best_row(table: pd.DataFrame, metric: str) -> int:
    """Position of the highest `metric` (NaN never wins; ties go to the first set)."""
    values = table[metric].to_numpy(dtype=np.float64)
    if np.isnan(values).all():
        return 0
    return int(np.nanargmax(values))


def _rows_from(array: np.ndarray | None, first: int) -> np.ndarray | None:
    return None if array is None else np.ascontiguousarray(array[first:])


def parameter_sets(name: str, given: Mapping[str, float | list[float]]) -> list[dict[str, float]]:
    """The parameter sets of a run (checked before any bar is read, and by the API before a
    job is recorded): defaults for what is not given, lists swept, every set checked;
    sets that cannot mean anything (fast >= slow) are left out of a sweep."""
    own = {k: v for k, v in given.items() if k not in STOP_PARAMS}
    stops = {k: v for k, v in given.items() if k in STOP_PARAMS}
    first = {k: (v[0] if isinstance(v, list) and v else v) for k, v in own.items()}
    unknown = [k for k, v in first.items() if isinstance(v, list)]
    if unknown:
        raise InvalidInputError("params", f"{', '.join(unknown)}: an empty list of values")
    defaults = get_strategy(name).defaults
    grid = expand_grid({**defaults, **own, **stops})
    if len(grid) == 1:
        resolve_params(name, {k: v for k, v in grid[0].items() if k not in STOP_PARAMS})
        return grid
    kept = []
    for params in grid:
        own_params = {k: v for k, v in params.items() if k not in STOP_PARAMS}
        if pointless(name, {**defaults, **own_params}) is None:
            resolve_params(name, own_params)
            kept.append(params)
    if not kept:
        raise InvalidInputError("params", f"no meaningful parameter set in the {len(grid)} given")
    return kept
