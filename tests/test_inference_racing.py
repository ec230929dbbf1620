"""RacingRunner: two inference paths raced per batch, with runners that are slow, fail, hang,
answer NaN or disagree. No GPU is needed: the paths are plain runners with the protocol's
shape (a TensorRT engine cannot be built on this machine; see services/inference/racing.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from services.inference.racing import FloatArray, InferenceUnavailableError, RacingRunner

WINDOW = 8


def _scores(windows: FloatArray) -> FloatArray:
    """The 'model': each window's mean price, so every answer can be checked."""
    return np.asarray(windows[:, :, 0].mean(axis=1), dtype=np.float64)


class Path:
    """A runner whose failure, hang or answer the test decides, batch by batch.

    `behind`: another Path this one answers after (each call waits, up to 50 ms, until
    that path has finished as many calls), so which path is first is decided by the
    test, not by how the machine schedules threads.
    """

    def __init__(self, name: str, behind: Path | None = None) -> None:
        self.name = name
        self.window = WINDOW
        self.behind = behind
        self.fail: str | None = None
        self.answer: Callable[[FloatArray], FloatArray] = _scores
        self.hold = threading.Event()
        self.hold.set()  # cleared: the next call hangs until it is set again
        self.calls = 0
        self.finished = 0
        self.cancels = 0
        self.seen: list[FloatArray] = []
        self._progress = threading.Condition()

    def run(self, windows: FloatArray) -> FloatArray:
        self.calls += 1
        self.seen.append(windows)
        if self.behind is not None:
            self.behind.wait_finished(self.calls, timeout_s=0.05)
        try:
            self.hold.wait()
            if self.fail:
                raise RuntimeError(self.fail)
            return self.answer(windows)
        finally:
            with self._progress:
                self.finished += 1
                self._progress.notify_all()

    def wait_finished(self, calls: int, timeout_s: float) -> None:
        with self._progress:
            self._progress.wait_for(lambda: self.finished >= calls, timeout=timeout_s)

    def cancel(self) -> None:
        self.cancels += 1


@pytest.fixture
def batch() -> FloatArray:
    rng = np.random.default_rng(7)
    windows = np.empty((16, WINDOW, 2))
    windows[:, :, 0] = 100 + rng.standard_normal((16, WINDOW)).cumsum(axis=1)
    windows[:, :, 1] = rng.integers(1, 500, (16, WINDOW))
    return windows


@pytest.fixture
def paths() -> Iterator[tuple[Path, Path]]:
    challenger = Path("tensorrt")
    reference = Path("onnx", behind=challenger)  # the GPU answers first, as it should
    yield reference, challenger
    reference.hold.set()  # nothing left hanging behind the test
    challenger.hold.set()


def _race(reference: Path, challenger: Path, **options: float) -> RacingRunner:
    return RacingRunner(reference, challenger, **options)  # type: ignore[arg-type]


def _step(race: RacingRunner, batch: FloatArray, *paths: Path) -> FloatArray:
    """One batch, then wait until `paths` have finished every call (the loser included):
    batches that come slower than both paths, so no path is still busy with the last."""
    answer = race.run(batch)
    for path in paths:
        path.wait_finished(path.calls, timeout_s=2)
    return answer


def test_a_faster_challenger_wins_once_it_has_agreed_and_is_checked_again_later(
    paths: tuple[Path, Path], batch: FloatArray
) -> None:
    reference, challenger = paths
    race = _race(reference, challenger, timeout_s=2, tolerance=1e-9, check_every=5)
    answers = [_step(race, batch, reference, challenger) for _ in range(10)]
    for answer in answers:
        np.testing.assert_allclose(answer, _scores(batch))
    stats = race.stats()
    # Batch 1 (unverified) and batches 5 and 10 (checks) are the reference's; the rest the
    # challenger's, without waiting for the slower reference.
    assert (stats["onnx"].wins, stats["tensorrt"].wins) == (3, 7)
    assert stats["onnx"].asked == stats["tensorrt"].asked == 10  # asked every time
    assert race.fallbacks == 0
    assert stats["tensorrt"].disagreements == 0


def test_a_challenger_that_disagrees_is_discarded_and_counted_until_it_agrees_again(
    paths: tuple[Path, Path], batch: FloatArray
) -> None:
    reference, challenger = paths
    right = _scores(batch)

    def step() -> FloatArray:
        return _step(race, batch, reference, challenger)

    race = _race(reference, challenger, timeout_s=2, tolerance=1e-6, check_every=3)
    np.testing.assert_allclose(step(), right)  # 1: agrees, so it is trusted
    challenger.answer = lambda w: _scores(w) + 0.01  # its FP16 engine drifts
    # 2: trusted and not a check, and the reference is slow this time: the challenger's
    # answer wins unseen. The price of checking only every 3rd batch.
    reference.hold.clear()
    np.testing.assert_allclose(race.run(batch), right + 0.01)
    reference.hold.set()
    reference.wait_finished(reference.calls, timeout_s=2)
    np.testing.assert_allclose(step(), right)  # 3: a check catches it
    np.testing.assert_allclose(step(), right)  # 4: untrusted, checked again
    stats = race.stats()["tensorrt"]
    assert (stats.disagreements, stats.wins) == (2, 1)
    assert stats.last_error == "max abs difference 0.01 from onnx (tolerance 1e-06)"
    challenger.answer = _scores
    for _ in range(3):  # 5: agrees again; 6: a check; 7: trusted, it wins
        np.testing.assert_allclose(step(), right)
    stats = race.stats()["tensorrt"]
    assert (stats.disagreements, stats.wins) == (2, 2)
    assert race.stats()["onnx"].wins == 5


def test_a_failing_or_nan_challenger_falls_back_to_the_reference(
    paths: tuple[Path, Path], batch: FloatArray
) -> None:
    reference, challenger = paths
    race = _race(reference, challenger, timeout_s=2)
    race.run(batch)  # verified
    challenger.fail = "CUDA error: an illegal memory access was encountered"
    np.testing.assert_allclose(race.run(batch), _scores(batch))
    challenger.fail = None
    challenger.answer = lambda w: np.full(w.shape[0], np.nan)
    np.testing.assert_allclose(race.run(batch), _scores(batch))
    challenger.answer = lambda w: _scores(w)[:-1]  # a short answer
    np.testing.assert_allclose(race.run(batch), _scores(batch))
    stats = race.stats()["tensorrt"]
    assert (stats.errors, stats.invalid) == (1, 2)
    assert stats.last_error == "15 rows for 16 windows"
    assert race.fallbacks == 3
    assert race.stats()["onnx"].wins == 4


def test_a_hung_challenger_is_not_asked_again_until_it_returns(
    paths: tuple[Path, Path], batch: FloatArray
) -> None:
    reference, challenger = paths
    race = _race(reference, challenger, timeout_s=60)
    race.run(batch)
    challenger.hold.clear()  # the GPU call never comes back
    started = time.monotonic()
    for _ in range(5):
        np.testing.assert_allclose(race.run(batch), _scores(batch))
    took = time.monotonic() - started
    assert took < 30  # far below one 60 s timeout: no batch waited for the hung path
    # Two calls hang (the one beyond the batch is allowed); nothing piles up behind them.
    assert challenger.calls == 3
    assert race.stats()["tensorrt"].busy == 3
    assert challenger.cancels == 2  # each was told to stop when its batch was decided
    challenger.hold.set()  # they come back: their answers are dropped, the path asked again
    deadline = time.monotonic() + 2
    while race.stats()["tensorrt"].late < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert race.stats()["tensorrt"].late == 2
    race.run(batch)
    assert challenger.calls == 4


def test_no_good_answer_in_time_is_one_error_naming_both_causes(
    paths: tuple[Path, Path], batch: FloatArray
) -> None:
    reference, challenger = paths
    race = _race(reference, challenger, timeout_s=0.2)
    reference.fail = "session closed"
    challenger.answer = lambda w: np.full(w.shape[0], np.inf)
    with pytest.raises(InferenceUnavailableError) as failed:
        race.run(batch)
    assert str(failed.value) == (
        "no inference path answered: onnx: RuntimeError: session closed; "
        "tensorrt: 16 scores not finite (NaN or inf)"
    )
    reference.fail = None
    reference.hold.clear()
    challenger.hold.clear()
    with pytest.raises(InferenceUnavailableError, match=r"onnx: no answer within 0.2 s"):
        race.run(batch)
    stats = race.stats()
    assert (stats["onnx"].timeouts, stats["tensorrt"].timeouts) == (1, 1)


def test_the_runners_get_a_copy_the_caller_may_reuse_and_windows_must_match(
    paths: tuple[Path, Path], batch: FloatArray
) -> None:
    reference, challenger = paths
    race = _race(reference, challenger, timeout_s=2)
    expected = _scores(batch)
    race.run(batch)
    batch[:] = 0  # the batcher refills its array as soon as run returns
    for seen in reference.seen + challenger.seen:
        np.testing.assert_allclose(_scores(seen), expected)
    assert race.name == "race(onnx,tensorrt)"
    assert race.window == WINDOW
    other = Path("tensorrt-32")
    other.window = 32
    with pytest.raises(ValueError, match="disagree on the window"):
        _race(reference, other)
