"""The seam between the pattern engine and models: windows of recent ticks, scored in batches.

A model sees what the engine keeps anyway: each symbol's last `window` ticks
as (price, size) pairs, oldest first, straight from the engine's ring buffer
(`PatternEngine.windows`), so no second copy of the history is maintained.
`InferenceBatcher` gathers the symbols due for scoring (for instance those
that just fired a signal), builds their windows as one array and hands it to
an `InferenceRunner` in batches of at most `max_batch`, the shape accelerator
runtimes want.

Not here: a runner. The ONNX Runtime one comes with the model-serving work;
any object with `name`, `window` and `run` fits. Also not here: threading.
`run_pending` is synchronous and should be called off the event loop (for
example `asyncio.to_thread`) once a runner is slower than a few microseconds;
it reads the engine's arrays, so the caller must not feed the engine from
another thread at the same time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from realtime.patterns.engine import PatternEngine, PatternSignal
from realtime.patterns.kernels import I_COUNT, I_LAST_TS, FloatArray


class InferenceRunner(Protocol):
    """Scores windows of ticks, many symbols per call.

    `run` receives float64 `(n, window, 2)`: the last `window` (price, size)
    pairs of n symbols, oldest first, and returns `(n,)` or `(n, k)` scores in
    the same order. It must not keep a reference to its input (the array is
    reused) and must raise rather than return a partial result.
    """

    name: str
    window: int

    def run(self, windows: FloatArray) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class Prediction:
    """A runner's scores for one symbol, as of the event time of its newest tick."""

    symbol: str
    ts_ns: int
    runner: str
    scores: tuple[float, ...]


class InferenceBatcher:
    def __init__(
        self, engine: PatternEngine, runner: InferenceRunner, *, max_batch: int = 256
    ) -> None:
        if not 1 <= runner.window <= engine.config.ring:
            raise ValueError(
                f"runner {runner.name!r} wants {runner.window}-tick windows; the engine keeps "
                f"{engine.config.ring} (raise its zscore/breakout/volume windows)"
            )
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._engine = engine
        self._runner = runner
        self._max_batch = max_batch
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self.batches = 0
        self.scored = 0
        self.skipped = 0  # symbols with fewer ticks than a window

    @property
    def pending(self) -> int:
        return len(self._pending)

    def request(self, symbols: Iterable[str]) -> None:
        """Mark symbols for scoring at the next `run_pending`; repeats collapse into one."""
        for symbol in symbols:
            self._pending[symbol] = None

    def request_for(self, signals: Iterable[PatternSignal]) -> None:
        self.request(signal.symbol for signal in signals)

    def run_pending(self) -> list[Prediction]:
        """Score every pending symbol with a full window; the rest are dropped and counted."""
        symbols = list(self._pending)
        self._pending.clear()
        engine, window = self._engine, self._runner.window
        sids = engine.symbol_ids(symbols)
        ready = engine.I[sids, I_COUNT] >= window
        self.skipped += int((~ready).sum())
        sids = sids[ready]
        out: list[Prediction] = []
        for start in range(0, sids.shape[0], self._max_batch):
            chunk = sids[start : start + self._max_batch]
            scores = np.asarray(self._runner.run(engine.windows(chunk, window)), dtype=np.float64)
            if scores.shape[0] != chunk.shape[0]:
                raise ValueError(
                    f"runner {self._runner.name!r} returned {scores.shape[0]} rows "
                    f"for {chunk.shape[0]} windows"
                )
            scores = scores.reshape(chunk.shape[0], -1)
            names = engine.symbols
            for sid, row in zip(chunk.tolist(), scores.tolist(), strict=True):
                out.append(
                    Prediction(
                        symbol=names[sid],
                        ts_ns=int(engine.I[sid, I_LAST_TS]),
                        runner=self._runner.name,
                        scores=tuple(row),
                    )
                )
            self.batches += 1
        self.scored += len(out)
        return out
