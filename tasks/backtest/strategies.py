"""The built-in strategies, and how a user's own signal function is found.

Built-ins (long rules; shorts are their mirror, used only when shorting):

* `sma_cross(fast=10, slow=50)`: enter when SMA(fast) crosses above SMA(slow),
  exit when it crosses below (vectorbt's `ma_crossed_above/below`).
* `rsi_reversion(window=14, lower=30, upper=70)`: enter when RSI crosses back
  up through `lower` (the oversold stretch is over), exit when it crosses up
  through `upper`. Short: enter crossing down through `upper`, cover crossing
  down through `lower`.
* `macd(fast=12, slow=26, signal=9)`: enter when MACD crosses above its
  signal line, exit when it crosses below.
* `bollinger_breakout(window=20, k=2)`: enter when the close crosses above
  the upper band, exit when it crosses below the middle band. Short: cross
  below the lower band, cover crossing above the middle.

Your own strategy is a function `(panel, params) -> Signals` in an
importable module, named `package.module:function`; its parameters and
defaults are a `PARAMS` dict attribute (or none):

    # mystrat.py
    from tasks.backtest.signals import Signals
    from tasks.backtest.indicators import crossed_above, sma

    def momentum(panel, params):
        trend = sma(panel.close, int(params["window"]))
        return Signals(crossed_above(panel.close, trend), crossed_above(trend, panel.close))

    momentum.PARAMS = {"window": 50.0}

`aitrader backtest run --strategy mystrat:momentum --param window=20:100:10`.
Signals at row t may use bars up to t only; the engine fills them at t+1.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.backtest import BUILTIN_STRATEGIES, require_strategy_name
from models.errors import InvalidInputError, NotFoundError
from tasks.backtest.indicators import bollinger, crossed_above, macd, rsi, sma_many
from tasks.backtest.panel import PricePanel
from tasks.backtest.signals import Params, SignalFunction, Signals

INTEGER_PARAMS = {"fast", "slow", "window", "signal"}


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: SignalFunction
    defaults: dict[str, float] = field(default_factory=dict)
    doc: str = ""


def get_strategy(name: str) -> Strategy:
    """A built-in by name, or `package.module:function` imported."""
    if name in _BUILTINS:
        return _BUILTINS[name]
    require_strategy_name(name)
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NotFoundError(f"strategy {name!r}: cannot import {module_name}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise NotFoundError(f"strategy {name!r}: {module_name} has no function {attr}")
    defaults = {k: float(v) for k, v in dict(getattr(fn, "PARAMS", {})).items()}
    return Strategy(name, fn, defaults, (fn.__doc__ or "").strip())


def resolve_params(name: str, given: Mapping[str, float]) -> dict[str, float]:
    """The strategy's defaults with `given` applied; unknown names and bad windows refused."""
    strategy = get_strategy(name)
    unknown = sorted(set(given) - set(strategy.defaults))
    if unknown and strategy.defaults:
        raise InvalidInputError(
            "params",
            f"{name} has no parameter {', '.join(unknown)} "
            f"(it takes {', '.join(strategy.defaults)})",
        )
    out = {**strategy.defaults, **{k: float(v) for k, v in given.items()}}
    for key, value in out.items():
        if key in INTEGER_PARAMS and name in _BUILTINS and (value != int(value) or value < 1):
            raise InvalidInputError("params", f"{key} must be a whole number >= 1, got {value}")
    if (reason := pointless(name, out)) is not None:
        raise InvalidInputError("params", reason)
    return out


def pointless(name: str, params: Mapping[str, float]) -> str | None:
    """Why a parameter set cannot mean anything (a sweep skips such sets), or None."""
    if name in ("sma_cross", "macd") and params["fast"] >= params["slow"]:
        return f"fast ({params['fast']:g}) must be below slow ({params['slow']:g})"
    if name == "rsi_reversion" and params["lower"] >= params["upper"]:
        return f"lower ({params['lower']:g}) must be below upper ({params['upper']:g})"
    return None


# --- the built-ins -----------------------------------------------------------------------


class _SmaCross:
    """SMA crossover; `signals_many` computes each distinct window once for a whole grid."""

    def __call__(self, panel: PricePanel, params: Params) -> Signals:
        return self.signals_many(panel, [params])

    def signals_many(self, panel: PricePanel, grid: Sequence[Params]) -> Signals:
        pairs = [(int(p.get("fast", 10)), int(p.get("slow", 50))) for p in grid]
        means = sma_many(panel.close, [w for pair in pairs for w in pair])
        n_bars, n_symbols = panel.shape
        entries = np.empty((n_bars, n_symbols * len(pairs)), dtype=np.bool_)
        exits = np.empty_like(entries)
        for k, (fast, slow) in enumerate(pairs):
            cols = slice(k * n_symbols, (k + 1) * n_symbols)
            entries[:, cols] = crossed_above(means[fast], means[slow])
            exits[:, cols] = crossed_above(means[slow], means[fast])
        return Signals(entries, exits, exits.copy(), entries.copy())


def _rsi_reversion(panel: PricePanel, params: Params) -> Signals:
    value = rsi(panel.close, int(params.get("window", 14)))
    lower, upper = float(params.get("lower", 30)), float(params.get("upper", 70))
    return Signals(
        entries=crossed_above(value, lower),
        exits=crossed_above(value, upper),
        short_entries=crossed_above(np.full_like(value, upper), value),
        short_exits=crossed_above(np.full_like(value, lower), value),
    )


def _macd(panel: PricePanel, params: Params) -> Signals:
    line, trigger, _ = macd(
        panel.close,
        int(params.get("fast", 12)),
        int(params.get("slow", 26)),
        int(params.get("signal", 9)),
    )
    up, down = crossed_above(line, trigger), crossed_above(trigger, line)
    return Signals(up, down, down.copy(), up.copy())


def _bollinger_breakout(panel: PricePanel, params: Params) -> Signals:
    mid, upper, lower = bollinger(
        panel.close, int(params.get("window", 20)), float(params.get("k", 2.0))
    )
    close = panel.close
    return Signals(
        entries=crossed_above(close, upper),
        exits=crossed_above(mid, close),
        short_entries=crossed_above(lower, close),
        short_exits=crossed_above(close, mid),
    )


def _builtin(name: str, fn: Callable[..., Signals], defaults: dict[str, float]) -> Strategy:
    return Strategy(name, fn, defaults)


_BUILTINS: dict[str, Strategy] = {
    "sma_cross": _builtin("sma_cross", _SmaCross(), {"fast": 10.0, "slow": 50.0}),
    "rsi_reversion": _builtin(
        "rsi_reversion", _rsi_reversion, {"window": 14.0, "lower": 30.0, "upper": 70.0}
    ),
    "macd": _builtin("macd", _macd, {"fast": 12.0, "slow": 26.0, "signal": 9.0}),
    "bollinger_breakout": _builtin(
        "bollinger_breakout", _bollinger_breakout, {"window": 20.0, "k": 2.0}
    ),
}
assert tuple(_BUILTINS) == BUILTIN_STRATEGIES, "models.backtest.BUILTIN_STRATEGIES is stale"
