"""Two inference runners raced on every batch: the first good answer wins, the other is dropped.

The design's "ask both, take the first success": a fast path (TensorRT on a GPU)
beside a reference path (ONNX Runtime on CPU, always there). Rules:

* **Good** means the right number of rows and every score finite; a NaN or a short
  answer is discarded and counted, and the other path's answer is awaited.
* **Bounded wait:** a batch waits at most `timeout_s` for a good answer; with none,
  `run` raises `InferenceUnavailableError`, naming each path's cause in one line.
* **No pile-up:** a path with `MAX_IN_FLIGHT` calls not yet returned (a hung GPU
  call) is not asked again until one does; the batch goes to the other path alone and
  the skip is counted as `busy`. Threads cannot be killed, so a hung runner holds at
  most that many. One call beyond the current batch is allowed so that a path still
  finishing a race it lost is asked all the same (ONNX Runtime sessions take
  concurrent calls): otherwise a reference that is always second would be busy at
  every batch and never checked.
* **Cancel the loser:** a runner with a `cancel()` method (ONNX Runtime's
  `RunOptions.terminate`, for one) is told to stop once the batch is decided without
  it; a late answer is dropped either way, and counted.
* **Agreement:** the challenger's answer may win only once it has agreed with the
  reference's on a batch both answered (max abs difference within `tolerance`).
  Until then, and on every `check_every`-th batch, the reference's answer is the one
  returned and the challenger's, if it came first, is compared with it. A
  disagreement is counted, the challenger's answer discarded, and it must agree
  again before it wins. Checking never waits for the challenger: a challenger
  slower than the reference simply never wins. A check the reference could not
  take part in (busy, failed) is made on the next batch.

The runners are called on one read-only copy of the input: the batcher reuses its
array as soon as `run` returns, while a losing runner may still be reading.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Literal, Protocol

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Side = Literal["reference", "challenger"]
SIDES: tuple[Side, Side] = ("reference", "challenger")
MAX_IN_FLIGHT = 2  # per path


class Runner(Protocol):
    """What realtime/patterns/inference.py's `InferenceRunner` asks of a runner."""

    name: str
    window: int

    def run(self, windows: FloatArray) -> FloatArray: ...


class InferenceUnavailableError(RuntimeError):
    """No path gave a good answer in time; the message names each path's cause."""


@dataclass
class PathStats:
    """One path's counters, as `/metrics` shows them."""

    asked: int = 0
    wins: int = 0  # its answer was the one returned
    errors: int = 0  # it raised
    invalid: int = 0  # NaN/inf, or the wrong number of rows
    timeouts: int = 0  # no answer within the batch's wait, and no other answer either
    busy: int = 0  # not asked: its previous call had not returned
    disagreements: int = 0  # (challenger) beyond tolerance of the reference
    late: int = 0  # answered after the batch was decided without it; dropped
    last_error: str | None = None


@dataclass
class _Path:
    runner: Runner
    stats: PathStats = field(default_factory=PathStats)
    in_flight: list[Future[_Answer]] = field(default_factory=list)


class RacingRunner:
    """Races `challenger` against `reference` (see the module's rules); itself a runner."""

    def __init__(
        self,
        reference: Runner,
        challenger: Runner,
        *,
        timeout_s: float = 0.1,
        tolerance: float = 1e-3,
        check_every: int = 100,
    ) -> None:
        if reference.window != challenger.window:
            raise ValueError(
                f"runners disagree on the window: {reference.name!r} wants "
                f"{reference.window} ticks, {challenger.name!r} {challenger.window}"
            )
        if timeout_s <= 0 or tolerance < 0 or check_every < 1:
            raise ValueError("timeout_s must be > 0, tolerance >= 0 and check_every >= 1")
        self.name = f"race({reference.name},{challenger.name})"
        self.window = reference.window
        self._paths: dict[Side, _Path] = {
            "reference": _Path(reference),
            "challenger": _Path(challenger),
        }
        self._timeout_s = timeout_s
        self._tolerance = tolerance
        self._check_every = check_every
        self._batches = 0
        self._verified = False  # the challenger agreed with the reference since its last miss
        self._check_due = False  # a check the reference could not take part in: the next batch
        self._lock = threading.Lock()  # late answers are counted from the pool's threads
        self._pool = ThreadPoolExecutor(
            max_workers=2 * MAX_IN_FLIGHT, thread_name_prefix="inference-race"
        )
        self.fallbacks = 0  # batches answered by one path because the other failed

    def stats(self) -> dict[str, PathStats]:
        """Each path's counters by runner name (copies)."""
        with self._lock:
            return {p.runner.name: PathStats(**vars(p.stats)) for p in self._paths.values()}

    def close(self) -> None:
        """Stop the pool without waiting for a hung call."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self, windows: FloatArray) -> FloatArray:
        self._batches += 1
        checking = not self._verified or self._check_due or self._batches % self._check_every == 0
        rows = windows.shape[0]
        answers: dict[Side, _Answer] = {}
        causes: dict[Side, str] = {}  # why a side has no answer, in words
        failed: set[Side] = set()  # busy, raised or invalid: not merely slower
        pending: dict[Future[_Answer], Side] = {}
        shared = windows.copy()  # one copy for both paths, read-only: the caller reuses its own
        shared.flags.writeable = False
        for side in SIDES:
            future = self._ask(side, shared)
            if future is None:
                causes[side] = f"{self._name(side)}: still busy with an earlier batch"
                failed.add(side)
            else:
                pending[future] = side
        deadline = monotonic() + self._timeout_s
        while pending and not self._decided(answers, causes, checking):
            left = max(deadline - monotonic(), 0.0)
            done, _ = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                side = pending.pop(future)
                cause = self._settle(side, future, rows)
                if cause is None:
                    answers[side] = future.result()
                else:
                    causes[side] = cause
                    failed.add(side)
        for future, side in pending.items():  # out of time, or no longer needed
            if not answers:
                with self._lock:
                    self._paths[side].stats.timeouts += 1
                causes[side] = f"{self._name(side)}: no answer within {self._timeout_s:g} s"
            self._drop(side, future)
        return self._decide(answers, causes, failed, checking)

    # -- one batch ------------------------------------------------------------------------

    def _name(self, side: Side) -> str:
        return self._paths[side].runner.name

    def _ask(self, side: Side, windows: FloatArray) -> Future[_Answer] | None:
        path = self._paths[side]
        with self._lock:
            path.in_flight = [f for f in path.in_flight if not f.done()]
            if len(path.in_flight) >= MAX_IN_FLIGHT:
                path.stats.busy += 1
                return None
            path.stats.asked += 1
        future = self._pool.submit(_timed, path.runner, windows)
        path.in_flight.append(future)
        return future

    def _decided(
        self, answers: dict[Side, _Answer], causes: dict[Side, str], checking: bool
    ) -> bool:
        """Enough to answer: the reference's answer, a trusted challenger's outside a
        check, or the one answer left when the other path failed."""
        if "reference" in answers:
            return True
        if "challenger" in answers:
            return (self._verified and not checking) or "reference" in causes
        return False

    def _settle(self, side: Side, future: Future[_Answer], rows: int) -> str | None:
        """None if `future` holds a good answer, else its cause, counted."""
        stats = self._paths[side].stats
        error = future.exception()
        if error is not None:
            with self._lock:
                stats.errors += 1
                stats.last_error = f"{type(error).__name__}: {error}"
            return f"{self._name(side)}: {stats.last_error}"
        scores = future.result().scores
        if scores.ndim == 0 or scores.shape[0] != rows or not np.isfinite(scores).all():
            with self._lock:
                stats.invalid += 1
                stats.last_error = _what_is_wrong(scores, rows)
            return f"{self._name(side)}: {stats.last_error}"
        return None

    def _drop(self, side: Side, future: Future[_Answer]) -> None:
        """The batch is decided without `future`: stop it if the runner can, count it late."""
        path = self._paths[side]
        cancel: Callable[[], None] | None = getattr(path.runner, "cancel", None)
        if cancel is not None:
            cancel()

        def late(_: Future[_Answer]) -> None:
            with self._lock:
                path.stats.late += 1

        future.add_done_callback(late)

    def _decide(
        self,
        answers: dict[Side, _Answer],
        causes: dict[Side, str],
        failed: set[Side],
        checking: bool,
    ) -> FloatArray:
        ours, theirs = answers.get("reference"), answers.get("challenger")
        self._check_due = checking and ours is None
        if ours is not None and theirs is not None:  # compared whenever both are in hand
            gap = _max_gap(ours.scores, theirs.scores)
            self._verified = gap <= self._tolerance
            if not self._verified:
                with self._lock:
                    stats = self._paths["challenger"].stats
                    stats.disagreements += 1
                    stats.last_error = (
                        f"max abs difference {gap:.3g} from {self._name('reference')} "
                        f"(tolerance {self._tolerance:g})"
                    )
        winner: Side
        if ours is not None and (theirs is None or checking or not self._verified):
            winner = "reference"
        elif theirs is not None and (ours is None or theirs.at <= ours.at):
            winner = "challenger"  # trusted, and first (or alone)
        elif ours is not None:
            winner = "reference"
        else:
            raise InferenceUnavailableError(
                "no inference path answered: "
                + "; ".join(causes.get(side, f"{self._name(side)}: no answer") for side in SIDES)
            )
        other: Side = "challenger" if winner == "reference" else "reference"
        with self._lock:
            self._paths[winner].stats.wins += 1
            if other in failed:
                self.fallbacks += 1  # the other path failed, not merely lost the race
        return answers[winner].scores


@dataclass(frozen=True)
class _Answer:
    scores: FloatArray
    at: float  # monotonic time the runner returned: who was first when both are in


def _timed(runner: Runner, windows: FloatArray) -> _Answer:
    scores = np.asarray(runner.run(windows), dtype=np.float64)
    return _Answer(scores, monotonic())


def _max_gap(ours: FloatArray, theirs: FloatArray) -> float:
    if ours.shape != theirs.shape:
        return math.inf
    return float(np.max(np.abs(ours - theirs), initial=0.0))


def _what_is_wrong(scores: FloatArray, rows: int) -> str:
    if scores.ndim == 0 or scores.shape[0] != rows:
        return f"{scores.shape[0] if scores.ndim else 0} rows for {rows} windows"
    bad = int((~np.isfinite(scores)).sum())
    return f"{bad} score{'s' if bad != 1 else ''} not finite (NaN or inf)"
