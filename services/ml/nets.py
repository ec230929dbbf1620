"""The two networks: N-BEATS forecasting returns, a 1-D CNN classifying what follows a window.

Both take what the realtime engine holds, float32 `(batch, window, 2)` raw
(price, size) windows, and normalise inside the network: the exported ONNX
file is the whole model, so the runner feeds engine windows as they are and
no preprocessing can drift between training and serving.

* Prices become one-bar log returns divided by the window's own standard
  deviation (floored), so a $5 stock and a $500 one, a calm week and a wild
  one, look alike; N-BEATS forecasts in that unit and multiplies back.
* Sizes become `log1p(size / mean size of the window)`: volume relative to
  its recent normal, which is what the volume-spike pattern reads too.

N-BEATS follows Oreshkin et al. 2019 (doubly residual stacks of fully
connected blocks). `generic` blocks learn their own bases; `interpretable`
stacks are a trend block (polynomial basis) and a seasonality block (Fourier
basis), whose forecasts can be read apart.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.ml import Stacks

EPS = 1e-6
SCALE_FLOOR = 1e-4  # a window of constant prices has std 0; its returns stay 0, not inf


def returns_and_scale(x: Tensor) -> tuple[Tensor, Tensor]:
    """`(batch, window - 1)` log returns of the price channel and `(batch, 1)` their std."""
    logp = torch.log(torch.clamp(x[:, :, 0], min=EPS))
    r = logp[:, 1:] - logp[:, :-1]
    centred = r - r.mean(dim=1, keepdim=True)
    scale = torch.sqrt((centred * centred).mean(dim=1, keepdim=True)) + SCALE_FLOOR
    return r, scale


class _Block(nn.Module):
    """Four fully connected layers, then a backcast and a forecast through a basis."""

    def __init__(
        self,
        backcast: int,
        forecast: int,
        hidden: int,
        basis_b: Tensor | None,
        basis_f: Tensor | None,
        thetas: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = backcast
        for _ in range(4):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.fc = nn.Sequential(*layers)
        if basis_b is None or basis_f is None:  # generic: learnt bases
            self.theta_b = nn.Linear(hidden, thetas)
            self.theta_f = nn.Linear(hidden, thetas)
            self.back: nn.Module = nn.Linear(thetas, backcast, bias=False)
            self.fore: nn.Module = nn.Linear(thetas, forecast, bias=False)
        else:  # fixed bases (trend, seasonality): thetas are their coefficients
            self.theta_b = nn.Linear(hidden, basis_b.shape[0], bias=False)
            self.theta_f = nn.Linear(hidden, basis_f.shape[0], bias=False)
            self.back = _Basis(basis_b)
            self.fore = _Basis(basis_f)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h = self.fc(z)
        return self.back(self.theta_b(h)), self.fore(self.theta_f(h))


class _Basis(nn.Module):
    basis: Tensor

    def __init__(self, basis: Tensor) -> None:
        super().__init__()
        self.register_buffer("basis", basis)

    def forward(self, theta: Tensor) -> Tensor:
        return theta @ self.basis


def _trend(length: int, degree: int) -> Tensor:
    t = torch.arange(length, dtype=torch.float32) / length
    return torch.stack([t**i for i in range(degree + 1)])


def _seasonality(length: int, harmonics: int) -> Tensor:
    t = torch.arange(length, dtype=torch.float32) / length
    rows = [torch.ones(length)]
    for i in range(1, harmonics + 1):
        rows += [torch.cos(2 * math.pi * i * t), torch.sin(2 * math.pi * i * t)]
    return torch.stack(rows)


class NBeats(nn.Module):
    """Forecasts the next `horizon` one-bar log returns from a `window` of (price, size)."""

    def __init__(
        self,
        window: int,
        horizon: int,
        *,
        stacks: Stacks = "generic",
        blocks: int = 3,
        hidden: int = 64,
        degree: int = 2,
        harmonics: int = 2,
    ) -> None:
        super().__init__()
        self.window, self.horizon = window, horizon
        backcast = window - 1
        made: list[_Block] = []
        if stacks == "generic":
            made = [_Block(backcast, horizon, hidden, None, None, 8) for _ in range(blocks)]
        else:
            for _ in range(max(1, blocks // 2)):
                made.append(
                    _Block(
                        backcast,
                        horizon,
                        hidden,
                        _trend(backcast, degree),
                        _trend(horizon, degree),
                        0,
                    )
                )
            for _ in range(max(1, blocks - blocks // 2)):
                made.append(
                    _Block(
                        backcast,
                        horizon,
                        hidden,
                        _seasonality(backcast, harmonics),
                        _seasonality(horizon, harmonics),
                        0,
                    )
                )
        self.blocks = nn.ModuleList(made)

    def normalised(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The forecast in units of the window's return std, and that std: what training fits."""
        r, scale = returns_and_scale(x)
        residual = r / scale
        forecast = torch.zeros(x.shape[0], self.horizon, dtype=x.dtype, device=x.device)
        for block in self.blocks:
            back, fore = block(residual)
            residual = residual - back
            forecast = forecast + fore
        return forecast, scale

    def forward(self, x: Tensor) -> Tensor:
        forecast, scale = self.normalised(x)
        return forecast * scale


class PatternCnn(nn.Module):
    """Probabilities of down, flat and up over the label horizon, from one window.

    `temperature` divides the logits: fitted after training on the validation
    split (`fit_temperature`) so that a stated 70 % comes true about 70 % of the
    time; it is a buffer, so the exported file carries it.
    """

    temperature: Tensor

    def __init__(self, window: int, *, channels: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.window = window
        self.features = nn.Sequential(
            nn.Conv1d(2, channels, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.Conv1d(channels, 2 * channels, kernel_size=5, padding=2),
            nn.ReLU(),
        )
        self.head = nn.Linear(4 * channels, classes)
        self.register_buffer("temperature", torch.ones(()))

    def logits(self, x: Tensor) -> Tensor:
        _, scale = returns_and_scale(x)
        logp = torch.log(torch.clamp(x[:, :, 0], min=EPS))
        price = (logp - logp[:, -1:]) / scale  # the path into the last price, in its own stds
        size = x[:, :, 1]
        volume = torch.log1p(size / (size.mean(dim=1, keepdim=True) + EPS))
        h = self.features(torch.stack([price, volume], dim=1))  # (batch, 2c, window)
        pooled = torch.cat([h.mean(dim=2), h[:, :, -1]], dim=1)  # the whole and the latest
        logits: Tensor = self.head(pooled)
        return logits

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.logits(x) / self.temperature, dim=1)
