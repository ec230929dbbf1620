"""Checking a research note against the data it claims to read.

A note's evidence quotes figures ("close 171.21", "5d return -1.2%", "-10.9% vs SMA50").
Every figure it states must be one the point-in-time snapshot holds for that
symbol, to the precision it was written with: a percentage to its last
printed digit, a price to the cent. A figure that matches nothing is
reported as unsupported: a model that invented a number, or read another
symbol's. Numbers that are part of a word (`20d`, `SMA50`) are window names,
not figures, and are not checked. Pure: the caller supplies the snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from models.snapshot import SymbolMetrics

# A figure: not glued to a letter, digit or dot on either side; an optional percent sign.
_FIGURE = re.compile(r"(?<![\w.])([-+]?\d+(?:\.\d+)?)(%?)(?![\w.]*\w)")
_RATIOS = ("ret_1d", "ret_5d", "ret_7d", "ret_20d", "vol_20d", "drawdown_60d")
_RATIOS_SMA = ("dist_sma_20", "dist_sma_50")


@dataclass(frozen=True)
class FigureCheck:
    text: str
    value: float
    percent: bool
    matches: list[str]  # the metrics it agrees with; empty: unsupported


def check_figures(texts: Iterable[str], metrics: SymbolMetrics) -> list[FigureCheck]:
    """Each figure in `texts`, with the snapshot metrics of its symbol it agrees with."""
    checks = []
    for text in texts:
        for match in _FIGURE.finditer(text):
            number, percent = match.group(1), match.group(2) == "%"
            value = float(number)
            decimals = len(number.split(".")[1]) if "." in number else 0
            checks.append(
                FigureCheck(
                    text=match.group(0),
                    value=value,
                    percent=percent,
                    matches=_agreeing(value, decimals, percent, metrics),
                )
            )
    return checks


def _agreeing(value: float, decimals: int, percent: bool, m: SymbolMetrics) -> list[str]:
    tolerance = 0.5 * 10.0**-decimals + 1e-9
    found = []
    if percent:
        for name in (*_RATIOS, *_RATIOS_SMA):
            metric = getattr(m, name)
            if metric is not None and abs(metric * 100 - value) <= tolerance:
                found.append(name)
    elif abs(m.close - value) <= max(tolerance, 0.005 + 1e-9):
        found.append("close")
    return found
