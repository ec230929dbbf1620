"""How a network is fitted: epochs, batches, rate, patience, seed, threads. No torch here, so
a flow can describe a training run before it imports torch to do it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 3  # epochs without a better validation loss before stopping
    seed: int = 0
    threads: int = 1
