"""The networks on raw engine windows: what they ignore (the price level, the volume level),
what they survive (constant and zero prices), and what an interpretable block can say."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from models.ml import Stacks
from services.ml.nets import NBeats, PatternCnn, returns_and_scale

WINDOW, HORIZON = 24, 8


def make_windows(
    n: int = 64, *, sigma: float = 0.02, price: float = 50.0, seed: int = 0
) -> torch.Tensor:
    """Float32 `(n, WINDOW, 2)` raw (close, volume) windows, as the realtime engine holds them."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, sigma, (n, WINDOW)), axis=1))
    volume = rng.uniform(1e5, 1e6, (n, WINDOW))
    return torch.tensor(np.stack([close, volume], axis=2), dtype=torch.float32)


def make_nbeats(stacks: Stacks, *, degree: int = 2, harmonics: int = 2) -> NBeats:
    torch.manual_seed(0)
    return NBeats(
        WINDOW, HORIZON, stacks=stacks, blocks=3, hidden=32, degree=degree, harmonics=harmonics
    ).eval()


def make_cnn() -> PatternCnn:
    torch.manual_seed(0)
    return PatternCnn(WINDOW, channels=8).eval()


def scaled(x: torch.Tensor, *, price: float = 1.0, volume: float = 1.0) -> torch.Tensor:
    return x * torch.tensor([price, volume])


# --- what the networks ignore ---------------------------------------------------------


@pytest.mark.parametrize("stacks", ["generic", "interpretable"])
def test_nbeats_forecasts_the_same_returns_for_a_stock_100_times_dearer(stacks: Stacks) -> None:
    model, x = make_nbeats(stacks), make_windows()
    with torch.no_grad():
        base = model(x)
        dear = model(scaled(x, price=100.0))
        cheap = model(scaled(x, price=0.01))
        louder = model(scaled(x, volume=10.0))
    assert base.shape == (64, HORIZON)
    assert base.abs().max() > 1e-4  # not trivially zero
    torch.testing.assert_close(dear, base, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(cheap, base, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(louder, base, rtol=0, atol=0)  # the forecaster reads prices only


def test_nbeats_returns_scale_with_the_window_volatility() -> None:
    # Twice the returns in, twice the returns out: it forecasts in units of the window's std
    # (up to the std floor, which is added: 1e-4 beside a std of 0.02 to 0.04 here).
    model, x = make_nbeats("generic"), make_windows()
    logp = torch.log(x[:, :, 0])
    wilder = torch.exp(2.0 * (logp - logp[:, :1]) + logp[:, :1])
    doubled = torch.stack([wilder, x[:, :, 1]], dim=2)
    with torch.no_grad():
        want = 2.0 * model(x)
        got = model(doubled)
    assert (got - want).abs().max() < 1e-2 * want.abs().max()


def test_the_classifier_reads_relative_volume_and_relative_price() -> None:
    model, x = make_cnn(), make_windows()
    with torch.no_grad():
        base = model(x)
        torch.testing.assert_close(model(scaled(x, volume=10.0)), base, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model(scaled(x, price=100.0)), base, rtol=1e-5, atol=1e-6)
        spike = x.clone()
        spike[:, -1, 1] *= 20.0  # the last bar's volume, not the level, is what moved
        assert (model(spike) - base).abs().max() > 1e-4


def test_the_classifier_gives_probabilities() -> None:
    model, x = make_cnn(), make_windows(n=200, sigma=0.05)
    with torch.no_grad():
        probs = model(x)
    assert probs.shape == (200, 3)
    assert (probs >= 0).all()
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(200), rtol=0, atol=1e-6)
    model.temperature.fill_(4.0)  # a higher temperature flattens, never reorders
    with torch.no_grad():
        flatter = model(x)
    torch.testing.assert_close(flatter.sum(dim=1), torch.ones(200), rtol=0, atol=1e-6)
    assert (flatter.max(dim=1).values <= probs.max(dim=1).values + 1e-7).all()
    assert torch.equal(flatter.argmax(dim=1), probs.argmax(dim=1))


# --- what the networks survive ------------------------------------------------------------


def degenerate_windows() -> torch.Tensor:
    constant = torch.stack([torch.full((WINDOW,), 42.0), torch.full((WINDOW,), 1e6)], dim=1)
    zeros = torch.zeros(WINDOW, 2)  # what the ONNX runner warms a session with
    some_zero = make_windows(n=1)[0].clone()
    some_zero[5, 0] = 0.0
    no_volume = make_windows(n=1, seed=1)[0].clone()
    no_volume[:, 1] = 0.0
    return torch.stack([constant, zeros, some_zero, no_volume])


def test_the_scale_is_floored_for_a_window_of_constant_prices() -> None:
    r, scale = returns_and_scale(degenerate_windows()[:1])
    assert torch.equal(r, torch.zeros(1, WINDOW - 1))
    assert scale.item() > 0


MODELS: dict[str, Callable[[], torch.nn.Module]] = {
    "nbeats-generic": lambda: make_nbeats("generic"),
    "nbeats-interpretable": lambda: make_nbeats("interpretable"),
    "pattern-cnn": make_cnn,
}


@pytest.mark.parametrize("name", MODELS)
def test_constant_zero_and_silent_windows_give_finite_outputs(name: str) -> None:
    model = MODELS[name]()
    with torch.no_grad():
        out = model(degenerate_windows())
    assert torch.isfinite(out).all()
    if isinstance(model, NBeats):
        # A price that never moved forecasts (almost) no move: the floor keeps it small.
        assert out[0].abs().max() < 1e-3


# --- interpretable N-BEATS ------------------------------------------------------------------


def polyfit_residual(y: np.ndarray, degree: int) -> float:
    t = np.arange(len(y)) / len(y)
    fitted = np.polyval(np.polyfit(t, y, degree), t)
    return float(np.abs(y - fitted).max())


def fourier_residual(y: np.ndarray, harmonics: int) -> float:
    t = np.arange(len(y)) / len(y)
    columns = [np.ones_like(t)]
    for i in range(1, harmonics + 1):
        columns += [np.cos(2 * np.pi * i * t), np.sin(2 * np.pi * i * t)]
    basis = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(np.abs(y - basis @ coef).max())


def block_outputs(model: NBeats, x: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each block's (backcast, forecast), fed the residual the model feeds it."""
    r, scale = returns_and_scale(x)
    residual = r / scale
    out = []
    with torch.no_grad():
        for block in model.blocks:
            back, fore = block(residual)
            residual = residual - back
            out.append((back.double().numpy(), fore.double().numpy()))
    return out


def test_interpretable_blocks_forecast_a_low_degree_trend_then_a_few_harmonics() -> None:
    degree, harmonics = 2, 1
    model, x = make_nbeats("interpretable", degree=degree, harmonics=harmonics), make_windows(8)
    blocks = block_outputs(model, x)
    trend, seasonal = blocks[0], blocks[1:]  # 3 blocks: 3 // 2 trend, the rest seasonality
    assert len(seasonal) == 2
    for row_back, row_fore in zip(*trend, strict=True):
        size = np.abs(row_fore).max()
        assert size > 1e-4
        assert polyfit_residual(row_fore, degree) < 1e-5 * max(size, 1.0)
        assert polyfit_residual(row_back, degree) < 1e-5 * max(np.abs(row_back).max(), 1.0)
        assert polyfit_residual(row_fore, degree - 1) > 1e-3 * size  # degree 2 is used
    for back, fore in seasonal:
        for row_back, row_fore in zip(back, fore, strict=True):
            assert fourier_residual(row_fore, harmonics) < 1e-5 * max(np.abs(row_fore).max(), 1.0)
            assert fourier_residual(row_back, harmonics) < 1e-5 * max(np.abs(row_back).max(), 1.0)
            assert polyfit_residual(row_fore, degree) > 1e-6  # not a trend in disguise

    # The forecast is the blocks' forecasts summed, times the window's std: they read apart.
    forecast, scale = model.normalised(x)
    total = sum(fore for _, fore in blocks)
    np.testing.assert_allclose(forecast.detach().double().numpy(), total, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), forecast * scale)
