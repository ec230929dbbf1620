"""Walk-forward train/valid/test splits, with a purge gap, over time-ordered samples.

Indices 0..n-1 are time steps in order: one sample each, or a group of samples
sharing a step (every symbol's window ending on one date), as long as the label
horizon is counted in the same steps. Fold layout (expanding window; `a` and `b`
move forward by `test_size` from one fold to the next):

    [0, a)                train
    [a, a+purge)          dropped
    [a+purge, b)          valid   (b - a - purge == valid_size)
    [b, b+purge)          dropped
    [b+purge, b+purge+test_size)  test

The last fold's test ends at n, and the test windows of consecutive folds are
adjacent, so together they cover the final `folds * test_size` samples once
each: concatenated, they are one out-of-sample record. The first fold's train
has at least `min_train` samples; each later fold trains on `test_size` more.
A later fold trains and validates on steps an earlier fold tested on; that is
intended: each fold is a separate training run, and only its own test window
must be unseen.

Why the purge. The label of sample i looks ahead: it is computed from steps
i+1..i+horizon. A training sample just before the valid window therefore has a
label made of the very prices the valid (or test) samples are built from and
scored on: the model would be trained on the future it is then graded on, and
the held-out score would be too good. Dropping `purge` steps at each boundary
removes those samples. `purge` must be at least the label horizon, so that the
last training label ends before the first held-out sample's own step; if the
features are a window of the last `window` steps, use `horizon + window - 1`
so that no training label overlaps a held-out input either. The gap between
valid and test is purged for the same reason: the valid labels choose the
model, so they must not see into the test window. No embargo after the test
window is needed: with an expanding window, training data always precede it.

Not here: building the samples (features and labels) and the training loop;
this module only hands out index ranges.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Split:
    """One fold: index slices (step 1, start <= stop) into the time-ordered samples."""

    train: slice
    valid: slice
    test: slice

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(train, valid, test) sample counts, purged samples not counted."""
        return _len(self.train), _len(self.valid), _len(self.test)


def walk_forward(
    n: int, *, folds: int, test_size: int, valid_size: int, purge: int, min_train: int
) -> list[Split]:
    """Folds oldest first; the last test window ends at n (see the module docstring).

    `purge` must be >= the label horizon (plus `window - 1` for windowed
    features); this function cannot check that, it only knows counts. Raises
    ValueError if an argument is out of range (purge >= 0, the rest >= 1) or if
    n is too small to give the first fold `min_train` training samples.
    """
    for name, value, least in (
        ("n", n, 1),
        ("folds", folds, 1),
        ("test_size", test_size, 1),
        ("valid_size", valid_size, 1),
        ("purge", purge, 0),
        ("min_train", min_train, 1),
    ):
        if value < least:
            raise ValueError(f"{name}={value}: must be >= {least}")
    needed = min_train + 2 * purge + valid_size + folds * test_size
    if n < needed:
        raise ValueError(
            f"n={n} is too small: min_train + 2*purge + valid_size + folds*test_size"
            f" = {min_train} + 2*{purge} + {valid_size} + {folds}*{test_size} = {needed}"
        )
    splits = []
    for fold in range(folds):
        test_end = n - (folds - 1 - fold) * test_size
        b = test_end - test_size - purge
        a = b - valid_size - purge
        splits.append(
            Split(
                train=slice(0, a),
                valid=slice(a + purge, b),
                test=slice(b + purge, test_end),
            )
        )
    return splits


def _len(s: slice) -> int:
    return int(s.stop) - int(s.start)
