"""What a strategy hands the engine, and the shape a strategy has.

Signals are decisions taken on a bar's close: `entries[t, j]` means "at the
close of bar t, open a long in column j". The engine fills them at bar t+1's
open, so a signal function may use bar t's whole bar (its close included)
and nothing later. A signal on a NaN bar is ignored by the engine.

A strategy is a `SignalFunction`: a plain function of the panel and one
parameter set. Strategies that can share work across many parameter sets
(the SMA crossover computes each window once for a whole grid) also offer
`signals_many`; `signals_for_grid` uses it when present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from tasks.backtest.panel import PricePanel

Params = Mapping[str, float]


@dataclass(frozen=True)
class Signals:
    """Boolean (bars, columns) arrays; columns are the panel's symbols, or for a grid
    `len(grid) x symbols`, parameter-set major (column `k * n_symbols + s`)."""

    entries: np.ndarray
    exits: np.ndarray
    short_entries: np.ndarray | None = None
    short_exits: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = self.entries.shape
        for name in ("entries", "exits", "short_entries", "short_exits"):
            array = getattr(self, name)
            if array is None:
                continue
            if array.dtype != np.bool_ or array.shape != shape or array.ndim != 2:
                raise ValueError(f"{name}: expected bool {shape}, got {array.dtype} {array.shape}")

    @property
    def columns(self) -> int:
        return int(self.entries.shape[1])


class SignalFunction(Protocol):
    """`(panel, params) -> Signals` for the panel's symbols, using bars up to t for row t."""

    def __call__(self, panel: PricePanel, params: Params) -> Signals: ...


@runtime_checkable
class BatchSignalFunction(Protocol):
    def signals_many(self, panel: PricePanel, grid: Sequence[Params]) -> Signals: ...


def signals_for_grid(fn: SignalFunction, panel: PricePanel, grid: Sequence[Params]) -> Signals:
    """Signals for every parameter set of `grid`, parameter-set major."""
    if isinstance(fn, BatchSignalFunction):
        return fn.signals_many(panel, grid)
    parts = [fn(panel, params) for params in grid]
    return stack_signals(parts)


def stack_signals(parts: Sequence[Signals]) -> Signals:
    def cat(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in parts]
        if all(a is None for a in arrays):
            return None
        shape = parts[0].entries.shape
        filled = [a if a is not None else np.zeros(shape, dtype=np.bool_) for a in arrays]
        return np.ascontiguousarray(np.concatenate(filled, axis=1))

    entries = np.ascontiguousarray(np.concatenate([p.entries for p in parts], axis=1))
    exits = np.ascontiguousarray(np.concatenate([p.exits for p in parts], axis=1))
    return Signals(entries, exits, cat("short_entries"), cat("short_exits"))
