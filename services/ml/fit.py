"""One training loop for both networks: mini-batches, early stopping, the learning curve.

Deterministic for a seed on CPU (torch's generator seeds the shuffles and the
initial weights), so a rerun of a training job on the same bars gives the
same file hash. `threads` caps torch's intra-op pool: a training job shares
the machine with the realtime server, and torch takes every core by default.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from services.ml.fit_config import FitConfig

__all__ = ["FitConfig", "History", "evaluate", "fit", "predict"]

Loss = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass
class History:
    """Mean loss per epoch on the training and validation samples; the epoch kept."""

    train: list[float] = field(default_factory=list)
    valid: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    @property
    def best_valid(self) -> float:
        return self.valid[self.best_epoch] if self.valid else math.nan


def fit(
    model: nn.Module,
    loss: Loss,
    train: tuple[Tensor, Tensor],
    valid: tuple[Tensor, Tensor],
    config: FitConfig,
) -> History:
    """Train `model` in place; it ends holding the weights of its best validation epoch."""
    if len(train[0]) == 0 or len(valid[0]) == 0:
        raise ValueError(f"empty split: {len(train[0])} training, {len(valid[0])} validation")
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)  # process-wide in torch: put back when done
    try:
        return _fit(model, loss, train, valid, config)
    finally:
        torch.set_num_threads(threads)


def _fit(
    model: nn.Module,
    loss: Loss,
    train: tuple[Tensor, Tensor],
    valid: tuple[Tensor, Tensor],
    config: FitConfig,
) -> History:
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    history = History()
    best_state = copy.deepcopy(model.state_dict())
    best = math.inf
    x, y = train
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), config.batch_size):
            index = order[start : start + config.batch_size]
            optimiser.zero_grad()
            value = loss(model, x[index], y[index])
            value.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            total += float(value.detach()) * len(index)
        history.train.append(total / len(x))
        history.valid.append(evaluate(model, loss, valid, config.batch_size))
        if not math.isfinite(history.valid[-1]):
            raise FloatingPointError(f"validation loss is {history.valid[-1]} at epoch {epoch}")
        if history.valid[-1] < best:
            best, history.best_epoch = history.valid[-1], epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - history.best_epoch >= config.patience and epoch < config.epochs - 1:
            history.stopped_early = True
            break
    model.load_state_dict(best_state)
    model.eval()
    return history


def evaluate(model: nn.Module, loss: Loss, data: tuple[Tensor, Tensor], batch_size: int) -> float:
    model.eval()
    x, y = data
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            total += float(loss(model, xb, yb)) * len(xb)
    return total / len(x)


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """`model`'s outputs for float32 windows, as float64 numpy, batch by batch."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(model(torch.from_numpy(x[start : start + batch_size])).numpy())
    return np.concatenate(out).astype(np.float64)
