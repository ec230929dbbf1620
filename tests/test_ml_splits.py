"""Walk-forward splits: purged gaps, adjacent test windows ending at n, growing train."""

from __future__ import annotations

import itertools

import pytest

from services.ml.splits import Split, walk_forward

CASES = [
    # n, folds, test_size, valid_size, purge, min_train
    (100, 4, 10, 8, 5, 20),
    (50, 1, 7, 3, 0, 40),  # purge 0, and n exactly the minimum (40 + 3 + 7)
    (1000, 7, 33, 50, 20, 300),
    (64, 3, 1, 1, 2, 1),
]


def _members(s: slice) -> set[int]:
    return set(range(s.start, s.stop))


@pytest.mark.parametrize(("n", "folds", "test_size", "valid_size", "purge", "min_train"), CASES)
def test_folds_are_disjoint_purged_and_tile_the_end(
    n: int, folds: int, test_size: int, valid_size: int, purge: int, min_train: int
) -> None:
    splits = walk_forward(
        n,
        folds=folds,
        test_size=test_size,
        valid_size=valid_size,
        purge=purge,
        min_train=min_train,
    )
    assert len(splits) == folds
    for s in splits:
        train, valid, test = _members(s.train), _members(s.valid), _members(s.test)
        assert not train & valid
        assert not train & test
        assert not valid & test
        assert s.train.start == 0
        assert s.valid.start - s.train.stop == purge
        assert s.test.start - s.valid.stop == purge
        assert s.sizes == (len(train), valid_size, test_size)
        assert all(x.step is None for x in (s.train, s.valid, s.test))

    assert splits[-1].test.stop == n
    for earlier, later in itertools.pairwise(splits):
        assert later.test.start == earlier.test.stop  # adjacent: no gap, no overlap
        assert later.train.stop == earlier.train.stop + test_size
    tested = [i for s in splits for i in range(s.test.start, s.test.stop)]
    assert tested == list(range(n - folds * test_size, n))
    assert splits[0].sizes[0] >= min_train


def test_a_worked_example() -> None:
    # n=30, 2 folds of 5, valid 4, purge 2: tests [20, 25) and [25, 30)
    assert walk_forward(30, folds=2, test_size=5, valid_size=4, purge=2, min_train=5) == [
        Split(train=slice(0, 12), valid=slice(14, 18), test=slice(20, 25)),
        Split(train=slice(0, 17), valid=slice(19, 23), test=slice(25, 30)),
    ]


def test_n_one_short_of_the_minimum_is_refused_with_the_numbers() -> None:
    # min_train + 2*purge + valid_size + folds*test_size = 20 + 10 + 8 + 40 = 78
    walk_forward(78, folds=4, test_size=10, valid_size=8, purge=5, min_train=20)
    with pytest.raises(ValueError, match=r"n=77 is too small.* = 78$") as caught:
        walk_forward(77, folds=4, test_size=10, valid_size=8, purge=5, min_train=20)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 0),
        ("folds", 0),
        ("test_size", 0),
        ("valid_size", 0),
        ("purge", -1),
        ("min_train", 0),
        ("folds", -3),
    ],
)
def test_out_of_range_arguments_are_refused(name: str, value: int) -> None:
    args = {"n": 500, "folds": 3, "test_size": 10, "valid_size": 10, "purge": 3, "min_train": 50}
    args[name] = value
    n = args.pop("n")
    with pytest.raises(ValueError, match=rf"^{name}={value}: must be >= "):
        walk_forward(n, **args)
