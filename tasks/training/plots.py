"""The training job's pictures, as PNG bytes: learning curves and the reliability diagram.

matplotlib's Agg canvas directly, as tasks/backtest/plot.py does: no pyplot
state, safe in Prefect's worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from services.ml.metrics import Calibration

if TYPE_CHECKING:
    from services.ml.fit import History  # torch: the caller has it loaded already


def learning_curve_png(curves: Sequence[tuple[str, History]], *, title: str) -> bytes:
    """Training and validation loss per epoch, one colour per fold; a dot at the epoch kept."""
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for i, (label, history) in enumerate(curves):
        colour = f"C{i % 10}"
        epochs = range(1, len(history.train) + 1)
        axes.plot(epochs, history.train, color=colour, linestyle="--", linewidth=1)
        axes.plot(epochs, history.valid, color=colour, linewidth=1.6, label=f"{label} valid")
        axes.plot(history.best_epoch + 1, history.best_valid, "o", color=colour)
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss (dashed: training)")
    axes.set_title(title)
    axes.legend(fontsize="small")
    return _png(figure)


def calibration_png(table: Calibration, *, title: str) -> bytes:
    """Accuracy against stated confidence per bin, beside the diagonal; bar widths show counts."""
    figure = Figure(figsize=(5.5, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    filled = [b for b in table.bins if b.count]
    axes.plot([b.confidence for b in filled], [b.accuracy for b in filled], "o-", label="model")
    for b in filled:
        axes.annotate(
            str(b.count),
            (b.confidence, b.accuracy),
            fontsize=7,
            xytext=(3, -9),
            textcoords="offset points",
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("stated confidence (top class)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"{title} (ECE {table.ece:.3f})")
    axes.legend(fontsize="small")
    return _png(figure)


def _png(figure: Figure) -> bytes:
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
