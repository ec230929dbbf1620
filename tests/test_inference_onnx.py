"""OnnxRunner: ONNX Runtime for real, on models built in the test (tests/onnx_models.py).

It scores batches of any size, refuses a file it cannot serve in one line (and keeps
serving the old version), switches versions under load without losing a batch, stops
a call in progress when told, and races behind RacingRunner as the reference path.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from services.inference.onnx_runner import ModelLoadError, OnnxRunner
from services.inference.racing import RacingRunner
from tests.onnx_models import fixed_batch_model, mean_price_model

WINDOW = 16


def _windows(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    windows = np.empty((n, WINDOW, 2))
    windows[:, :, 0] = 50 + rng.standard_normal((n, WINDOW)).cumsum(axis=1)
    windows[:, :, 1] = rng.integers(1, 1000, (n, WINDOW))
    return windows


def test_batches_of_any_size_score_as_the_model_says(tmp_path: Path) -> None:
    runner = OnnxRunner(
        mean_price_model(tmp_path / "m.onnx", window=WINDOW, scale=2.0), name="m", window=WINDOW
    )
    for n in (1, 7, 500):
        windows = _windows(n)
        scores = runner.run(windows)
        assert scores.shape == (n,)
        assert scores.dtype == np.float64
        # float32 inside the model: agreement to float32's precision
        np.testing.assert_allclose(scores, 2 * windows[:, :, 0].mean(axis=1), rtol=1e-6)
    assert (runner.name, runner.window, runner.version) == ("m", WINDOW, "1")


def test_a_file_it_cannot_serve_is_refused_in_one_line_and_the_old_version_serves_on(
    tmp_path: Path,
) -> None:
    good = mean_price_model(tmp_path / "v1.onnx", window=WINDOW)
    runner = OnnxRunner(good, name="forecaster", window=WINDOW)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    cases = {
        tmp_path / "absent.onnx": "no model file at",
        tmp_path / "junk.onnx": "junk.onnx does not load:",
        fixed_batch_model(tmp_path / "fixed.onnx", window=WINDOW): "batch axis is fixed at 1",
        mean_price_model(tmp_path / "w32.onnx", window=32): "takes 32-tick windows, not 16",
    }
    for path, says in cases.items():
        with pytest.raises(ModelLoadError) as refused:
            runner.load(path, "2")
        message = str(refused.value)
        assert message.startswith("forecaster 2: "), message
        assert says in message, message
        assert "\n" not in message
    assert runner.version == "1"
    np.testing.assert_allclose(
        runner.run(_windows(3)), _windows(3)[:, :, 0].mean(axis=1), rtol=1e-6
    )
    dynamic = OnnxRunner(mean_price_model(tmp_path / "any.onnx", window=None), name="d", window=8)
    assert dynamic.run(np.ones((2, 8, 2))).tolist() == [1.0, 1.0]  # a dynamic window fits any


def test_a_new_version_under_load_loses_no_batch(tmp_path: Path) -> None:
    versions = {
        str(k): mean_price_model(tmp_path / f"v{k}.onnx", window=WINDOW, scale=float(k))
        for k in range(1, 4)
    }
    runner = OnnxRunner(versions["1"], name="m", window=WINDOW)
    windows = _windows(64)
    means = windows[:, :, 0].mean(axis=1)
    results: list[float] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                ratio = runner.run(windows) / means
                # one version scored the whole batch
                np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
            except BaseException as exc:  # every failure is the finding, asserts included
                errors.append(exc)
                return
            results.append(float(ratio[0]))

    threads = [threading.Thread(target=serve) for _ in range(2)]
    for thread in threads:
        thread.start()
    for k in range(12):
        scored = len(results)
        runner.load(versions[str(k % 3 + 1)], str(k % 3 + 1))
        while len(results) <= scored and not errors:  # each version serves a batch or more
            stop.wait(0.001)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert runner.reloads == 12
    assert len(results) >= 12  # every version served a batch
    assert {round(r) for r in results} <= {1, 2, 3}  # every batch scored by some version


def test_cancel_stops_a_call_in_progress(tmp_path: Path) -> None:
    runner = OnnxRunner(
        mean_price_model(tmp_path / "m.onnx", window=WINDOW), name="m", window=WINDOW
    )
    big = np.ones((1_000_000, WINDOW, 2))  # long enough to be caught running
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            runner.run(big)
            outcome.append(None)
        except Exception as exc:  # ONNX Runtime's own exception type
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    while not runner._running and thread.is_alive():  # until it runs
        pass
    runner.cancel()
    thread.join(timeout=30)
    assert len(outcome) == 1
    assert outcome[0] is not None, "the call ran to its end after cancel()"
    assert "terminate" in str(outcome[0]).lower()
    assert runner.run(_windows(2)).shape == (2,)  # the next call runs as usual


def test_onnx_is_the_reference_a_racing_challenger_must_agree_with(tmp_path: Path) -> None:
    onnx_path = OnnxRunner(
        mean_price_model(tmp_path / "m.onnx", window=WINDOW), name="onnx", window=WINDOW
    )
    drifted = OnnxRunner(
        mean_price_model(tmp_path / "fp16.onnx", window=WINDOW, scale=1.001),
        name="trt",
        window=WINDOW,
    )
    race = RacingRunner(onnx_path, drifted, timeout_s=5, tolerance=1e-3, check_every=1)
    windows = _windows(32)
    for _ in range(20):  # the drifted path never wins, first or not
        np.testing.assert_allclose(race.run(windows), windows[:, :, 0].mean(axis=1), rtol=1e-6)
    stats = race.stats()
    assert stats["trt"].wins == 0
    # Compared whenever both answered (half the batches, by chance): 0.1 % of ~50 > 1e-3.
    assert stats["trt"].disagreements >= 1
    race.close()
