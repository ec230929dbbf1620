"""The model seam: the engine's recent ticks reach a runner as batched windows, in order."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.patterns.config import PatternConfig
from realtime.patterns.engine import PatternEngine
from realtime.patterns.inference import InferenceBatcher
from realtime.patterns.kernels import FloatArray

T0 = 1_709_562_600_000_000_000


class MomentumRunner:
    """A real (if tiny) model: return over the window and mean size. Records batch shapes."""

    name = "momentum"

    def __init__(self, window: int) -> None:
        self.window = window
        self.shapes: list[tuple[int, ...]] = []

    def run(self, windows: FloatArray) -> FloatArray:
        self.shapes.append(windows.shape)
        prices, sizes = windows[:, :, 0], windows[:, :, 1]
        return np.stack([prices[:, -1] / prices[:, 0] - 1, sizes.mean(axis=1)], axis=1)


class ShortRunner(MomentumRunner):
    def run(self, windows: FloatArray) -> FloatArray:
        return np.zeros(windows.shape[0] - 1)


def _engine_with_history(symbols: int, ticks: int) -> PatternEngine:
    engine = PatternEngine(PatternConfig(zscore_window=30, volume_window=30, breakout_window=10))
    for t in range(ticks):  # the ring (30) wraps several times
        for s in range(symbols):
            engine.on_tick(f"S{s}", 100.0 + s + t, 10.0 * (t + 1), T0 + t * 1_000_000_000)
    return engine


def test_windows_are_the_last_ticks_oldest_first_in_batches() -> None:
    engine = _engine_with_history(symbols=5, ticks=100)
    runner = MomentumRunner(window=20)
    batcher = InferenceBatcher(engine, runner, max_batch=2)
    batcher.request(["S3", "S0", "S3", "S4", "S1", "S2"])
    predictions = batcher.run_pending()
    assert [p.symbol for p in predictions] == ["S3", "S0", "S4", "S1", "S2"]
    assert runner.shapes == [(2, 20, 2), (2, 20, 2), (1, 20, 2)]
    s3 = engine.windows(engine.symbol_ids(["S3"]), 20)[0]
    np.testing.assert_array_equal(s3[:, 0], 103.0 + np.arange(80, 100))
    np.testing.assert_array_equal(s3[:, 1], 10.0 * np.arange(81, 101))
    assert predictions[0].scores == pytest.approx((202 / 183 - 1, 10.0 * 90.5))
    assert predictions[0].ts_ns == T0 + 99 * 1_000_000_000
    assert batcher.pending == 0
    assert (batcher.batches, batcher.scored) == (3, 5)


def test_symbols_without_a_full_window_are_skipped_and_counted() -> None:
    engine = _engine_with_history(symbols=2, ticks=10)
    batcher = InferenceBatcher(engine, MomentumRunner(window=20))
    batcher.request(["S0", "S1"])
    assert batcher.run_pending() == []
    assert batcher.skipped == 2


def test_signals_request_their_symbols_and_broken_runners_fail_loudly() -> None:
    engine = _engine_with_history(symbols=3, ticks=40)
    fired = engine.on_tick("S1", 500.0, 10_000.0, T0 + 41 * 1_000_000_000)
    assert fired  # a jump like that breaks out of everything
    batcher = InferenceBatcher(engine, MomentumRunner(window=10))
    batcher.request_for(fired)
    assert [p.symbol for p in batcher.run_pending()] == ["S1"]

    bad = InferenceBatcher(engine, ShortRunner(window=10))
    bad.request(["S0", "S2"])
    with pytest.raises(ValueError, match="returned 1 rows for 2 windows"):
        bad.run_pending()
    with pytest.raises(ValueError, match="wants 500-tick windows"):
        InferenceBatcher(engine, MomentumRunner(window=500))
