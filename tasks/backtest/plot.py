"""The equity-curve and drawdown picture of a backtest, as PNG bytes.

matplotlib's Agg canvas is used directly (no pyplot): no global figure
state, no display, safe in Prefect's worker threads.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def write_png(directory: Path, name: str, png: bytes) -> Path:
    """Write `png` as `directory/name.png` (the folder made if need be); its absolute path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    path.write_bytes(png)
    return path.resolve()


def equity_png(
    dates: pd.DatetimeIndex,
    equity: np.ndarray,
    benchmark: np.ndarray | None,
    *,
    title: str,
    label: str = "strategy",
    others: dict[str, np.ndarray] | None = None,
) -> bytes:
    """Two panels sharing the time axis: equity (and buy-and-hold, and any `others` by
    name), then the first curve's drawdown in %."""
    figure = Figure(figsize=(10, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    x = dates.tz_convert(None) if dates.tz is not None else dates
    top.plot(x, equity, label=label, color="#1f77b4", linewidth=1.4)
    if benchmark is not None:
        top.plot(x, benchmark, label="buy and hold", color="#7f7f7f", linewidth=1.0)
    for name, curve in (others or {}).items():
        top.plot(x, curve, label=name, linewidth=1.0)
    top.set_title(title)
    top.set_ylabel("equity")
    top.grid(alpha=0.3)
    top.legend(loc="upper left")
    drawdown = 100.0 * (equity / np.maximum.accumulate(equity) - 1.0)
    bottom.fill_between(x, drawdown, 0.0, color="#d62728", alpha=0.4, linewidth=0)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
