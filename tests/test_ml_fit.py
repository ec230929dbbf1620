"""The training loop: it stops when validation stops improving and keeps the best epoch, a
seed makes it repeat exactly, it learns what can be learnt, and it refuses what cannot run."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional

from services.ml.fit import FitConfig, evaluate, fit, predict
from services.ml.nets import NBeats, PatternCnn
from services.ml.windows import DOWN, FLAT, UP

WINDOW = 16


def make_windows(last_return: np.ndarray, *, seed: int = 0) -> Tensor:
    """Float32 `(n, WINDOW, 2)` windows: a 1 % daily random walk ending in `last_return`."""
    rng = np.random.default_rng(seed)
    n = len(last_return)
    returns = rng.normal(0.0, 0.01, (n, WINDOW - 1))
    returns[:, -1] = last_return
    close = 100.0 * np.exp(np.concatenate([np.zeros((n, 1)), np.cumsum(returns, axis=1)], axis=1))
    volume = rng.uniform(1e5, 2e5, (n, WINDOW))
    return torch.tensor(np.stack([close, volume], axis=2), dtype=torch.float32)


def last_bar_problem(n: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """Up when the last bar rose 4 %, down when it fell 4 %, flat when it barely moved."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    last = np.select([labels == UP, labels == DOWN], [0.04, -0.04], 0.0)
    last += rng.normal(0.0, 0.002, n)
    return make_windows(last, seed=seed + 1), torch.from_numpy(labels)


def noise_problem(n: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """Labels drawn independently of the windows: nothing to learn."""
    rng = np.random.default_rng(seed)
    return make_windows(rng.normal(0.0, 0.01, n), seed=seed + 1), torch.from_numpy(
        rng.integers(0, 3, n)
    )


def cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    assert isinstance(model, PatternCnn)
    return functional.cross_entropy(model.logits(x), y)


def squared_error(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return functional.mse_loss(model(x), y)


def make_cnn(seed: int = 0) -> PatternCnn:
    torch.manual_seed(seed)
    return PatternCnn(WINDOW, channels=8)


# --- early stopping ------------------------------------------------------------------------


def test_training_stops_past_the_validation_optimum_and_keeps_the_best_epoch() -> None:
    # One weight walks from 0 towards the training slope 2; validation wants slope 1. Its loss
    # falls until the weight passes 1, then rises: the best epoch is in the middle.
    x = torch.linspace(-1.0, 1.0, 64).unsqueeze(1)
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    config = FitConfig(epochs=200, batch_size=64, lr=0.05, patience=4)

    history = fit(model, squared_error, (x, 2.0 * x), (x, 1.0 * x), config)

    assert history.stopped_early
    assert len(history.valid) == len(history.train) == history.best_epoch + config.patience + 1
    assert len(history.valid) < config.epochs
    assert 5 < history.best_epoch < 50  # a real optimum, not the first or last epoch
    assert history.best_valid == min(history.valid)
    assert all(v > history.best_valid for v in history.valid[history.best_epoch + 1 :])
    assert model.weight.item() == pytest.approx(1.0, abs=0.05)
    assert evaluate(model, squared_error, (x, 1.0 * x), config.batch_size) == history.best_valid
    assert not model.training


def test_a_classifier_with_nothing_to_learn_stops_early_holding_its_best_weights() -> None:
    train, valid = noise_problem(600, seed=0), noise_problem(300, seed=10)
    model = make_cnn()
    config = FitConfig(epochs=40, batch_size=32, lr=1e-2, patience=2)

    history = fit(model, cross_entropy, train, valid, config)

    assert history.stopped_early
    assert len(history.valid) < config.epochs
    assert history.train[-1] < history.train[0]  # it fits the training noise meanwhile
    assert evaluate(model, cross_entropy, valid, config.batch_size) == history.best_valid
    assert history.best_valid < history.valid[-1]


def test_without_a_plateau_every_epoch_runs() -> None:
    train, valid = last_bar_problem(300, seed=0), last_bar_problem(100, seed=1)
    history = fit(make_cnn(), cross_entropy, train, valid, FitConfig(epochs=3, batch_size=64))
    assert not history.stopped_early
    assert len(history.train) == len(history.valid) == 3


# --- determinism ---------------------------------------------------------------------------


def test_a_seed_repeats_a_run_exactly_and_another_seed_does_not() -> None:
    train, valid = last_bar_problem(300, seed=0), last_bar_problem(100, seed=1)
    start = make_cnn()
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        model = copy.deepcopy(start)
        history = fit(
            model, cross_entropy, train, valid, FitConfig(epochs=2, batch_size=32, seed=seed)
        )
        runs[name] = (model.state_dict(), history)

    (a, history_a), (b, history_b), (c, _) = runs["a"], runs["b"], runs["c"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert history_a == history_b
    assert not all(torch.equal(a[k], c[k]) for k in a)  # another shuffle, other weights


# --- learning ------------------------------------------------------------------------------


def test_the_classifier_learns_what_the_last_bar_says() -> None:
    train, valid = last_bar_problem(1200, seed=0), last_bar_problem(300, seed=1)
    model = make_cnn()

    history = fit(model, cross_entropy, train, valid, FitConfig(epochs=6, batch_size=64, lr=3e-3))

    chance = math.log(3)  # balanced classes: a model that knows nothing scores log 3
    assert history.valid[0] < chance
    assert history.best_valid < 0.3 * chance
    probs = predict(model, valid[0].numpy())
    accuracy = float((probs.argmax(axis=1) == valid[1].numpy()).mean())
    assert accuracy > 0.9
    assert set(np.unique(probs.argmax(axis=1))) == {DOWN, FLAT, UP}


def test_predict_gives_the_model_outputs_batch_by_batch_as_float64() -> None:
    torch.manual_seed(0)
    model = NBeats(WINDOW, 3, hidden=16).eval()
    x = make_windows(np.zeros(50))
    with torch.no_grad():
        want = model(x).numpy()
    got = predict(model, x.numpy(), batch_size=7)
    assert got.dtype == np.float64
    assert got.shape == (50, 3)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("train_n", "valid_n"), [(0, 10), (10, 0)])
def test_an_empty_split_is_refused(train_n: int, valid_n: int) -> None:
    x, y = last_bar_problem(10, seed=0)
    with pytest.raises(ValueError, match=rf"empty split: {train_n} training, {valid_n} validation"):
        fit(
            make_cnn(),
            cross_entropy,
            (x[:train_n], y[:train_n]),
            (x[:valid_n], y[:valid_n]),
            FitConfig(),
        )


def test_a_loss_that_turns_nan_stops_the_run() -> None:
    x = make_windows(np.zeros(40))
    target = torch.zeros(40, 3)
    target[5] = math.nan  # one bad target poisons the weights through the gradient
    torch.manual_seed(0)
    model = NBeats(WINDOW, 3, hidden=16)
    with pytest.raises(FloatingPointError, match="validation loss is nan at epoch 0"):
        fit(model, squared_error, (x, target), (x, torch.zeros(40, 3)), FitConfig(epochs=5))
