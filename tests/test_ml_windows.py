"""Training samples from a long bar frame: what a window holds, which runs are left out,
how labels are drawn, and that nothing after a window's last bar reaches its features."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from services.ml.windows import (
    DOWN,
    FLAT,
    MAX_BAR_MOVE,
    UP,
    Samples,
    data_hash,
    direction_labels,
    samples_from_frame,
)

WINDOW, HORIZON = 10, 4
SPAN = WINDOW + HORIZON


def make_frame(
    symbols: Sequence[str] = ("AAA", "BBB"), *, bars: int = 60, sigma: float = 0.01, seed: int = 0
) -> pd.DataFrame:
    """Daily bars as `bars_frame` gives them: one row per (symbol, ts), floats, UTC stamps."""
    rng = np.random.default_rng(seed)
    ts = pd.bdate_range("2021-01-04", periods=bars, tz="UTC")
    parts = []
    for number, symbol in enumerate(symbols):
        close = (20.0 + 280.0 * number) * np.exp(np.cumsum(rng.normal(0.0, sigma, bars)))
        volume = rng.integers(100_000, 1_000_000, bars).astype(np.float64)
        parts.append(pd.DataFrame({"symbol": symbol, "ts": ts, "close": close, "volume": volume}))
    return pd.concat(parts, ignore_index=True)


def keys(samples: Samples) -> list[tuple[int, str]]:
    return [(int(e), samples.symbols[s]) for e, s in zip(samples.end, samples.symbol, strict=True)]


def all_runs(bars: int, symbols: Sequence[str]) -> set[tuple[int, str]]:
    return {(end, s) for end in range(WINDOW - 1, bars - HORIZON) for s in symbols}


def runs_touching(bar: int, symbol: str) -> set[tuple[int, str]]:
    """The (end, symbol) of every window + horizon run that holds bar `bar`."""
    return {(end, symbol) for end in range(bar - HORIZON, bar + WINDOW)}


# --- no label information in the features ---------------------------------------------


def test_changing_every_close_after_a_date_leaves_the_features_before_it_alone() -> None:
    frame = make_frame(bars=80)
    before = samples_from_frame(frame, window=WINDOW, horizon=HORIZON)
    t = 40  # the date index T: every close after dates[T] moves
    rng = np.random.default_rng(1)
    later = frame["ts"] > before.dates[t]
    changed = frame.copy()
    changed.loc[later, "close"] *= 1.25 * rng.uniform(0.99, 1.01, int(later.sum()))
    after = samples_from_frame(changed, window=WINDOW, horizon=HORIZON)

    assert keys(after) == keys(before)  # no run gained or lost a bar, or a jump
    labels_before = direction_labels(before, threshold=0.5)
    labels_after = direction_labels(after, threshold=0.5)
    known = before.end + HORIZON <= t  # window and label span both end by T
    straddling = (before.end <= t) & (before.end + HORIZON > t)  # window by T, label after
    assert known.sum() > 0
    assert straddling.sum() == HORIZON * len(before.symbols)

    np.testing.assert_array_equal(after.x[known], before.x[known])
    np.testing.assert_array_equal(after.future[known], before.future[known])
    np.testing.assert_array_equal(labels_after[known], labels_before[known])

    np.testing.assert_array_equal(after.x[straddling], before.x[straddling])
    assert (after.future[straddling, -1] != before.future[straddling, -1]).all()
    assert (labels_after[straddling] == UP).all()  # a 25 % rise after T: every label is up
    assert (labels_before[straddling] != UP).any()

    ended_later = before.end > t
    assert (after.x[ended_later, -1, 0] != before.x[ended_later, -1, 0]).all()


# --- what a sample holds -----------------------------------------------------------------


def test_windows_are_raw_close_and_volume_oldest_first_and_the_future_opens_at_their_end() -> None:
    frame = make_frame()
    samples = samples_from_frame(frame, window=WINDOW, horizon=HORIZON)
    close = frame.pivot(index="ts", columns="symbol", values="close")
    volume = frame.pivot(index="ts", columns="symbol", values="volume")

    assert samples.x.dtype == np.float32
    assert samples.x.shape == (len(samples), WINDOW, 2)
    assert samples.future.shape == (len(samples), HORIZON + 1)
    for i, (end, symbol) in enumerate(keys(samples)):
        bars = slice(end - WINDOW + 1, end + 1)
        np.testing.assert_array_equal(
            samples.x[i, :, 0], close[symbol].to_numpy()[bars].astype(np.float32)
        )
        np.testing.assert_array_equal(
            samples.x[i, :, 1], volume[symbol].to_numpy()[bars].astype(np.float32)
        )
        np.testing.assert_array_equal(
            samples.future[i], close[symbol].to_numpy()[end : end + HORIZON + 1]
        )
    np.testing.assert_allclose(samples.future[:, 0], samples.x[:, -1, 0], rtol=1e-7)
    np.testing.assert_allclose(
        samples.forward_returns(), np.diff(np.log(samples.future), axis=1), rtol=0
    )


def test_samples_are_ordered_by_end_date_then_symbol_and_selected_by_date_index() -> None:
    frame = make_frame(("CCC", "AAA", "BBB"), bars=40)
    samples = samples_from_frame(
        frame.sample(frac=1.0, random_state=3), window=WINDOW, horizon=HORIZON
    )

    assert samples.symbols == ("AAA", "BBB", "CCC")
    assert keys(samples) == sorted(all_runs(40, samples.symbols))
    assert samples.dates.is_monotonic_increasing
    assert len(samples.dates) == 40

    picked = samples.ending_in(slice(15, 20))
    assert keys(picked) == sorted((end, s) for end in range(15, 20) for s in samples.symbols)
    np.testing.assert_array_equal(picked.x, samples.x[(samples.end >= 15) & (samples.end < 20)])
    assert len(samples.ending_in(slice(-HORIZON, None))) == 0  # the last bars end no run
    assert keys(samples.ending_in(slice(-5 - HORIZON, -HORIZON))) == [
        (end, s) for end in range(40 - 5 - HORIZON, 40 - HORIZON) for s in samples.symbols
    ]


def test_stride_keeps_one_run_in_every_stride_bars() -> None:
    samples = samples_from_frame(make_frame(bars=40), window=WINDOW, horizon=HORIZON, stride=3)
    assert sorted(set(samples.end.tolist())) == list(range(WINDOW - 1, 40 - HORIZON, 3))


# --- runs left out ----------------------------------------------------------------------


def test_a_nan_close_or_a_missing_bar_removes_exactly_the_runs_that_cross_it() -> None:
    frame = make_frame(bars=60)
    nan_at, missing_at = 25, 40
    ts = sorted(frame["ts"].unique())
    frame.loc[(frame["symbol"] == "AAA") & (frame["ts"] == ts[nan_at]), "close"] = np.nan
    frame = frame[~((frame["symbol"] == "BBB") & (frame["ts"] == ts[missing_at]))]

    samples = samples_from_frame(frame, window=WINDOW, horizon=HORIZON)

    expected = all_runs(60, ("AAA", "BBB")) - runs_touching(nan_at, "AAA")
    expected -= runs_touching(missing_at, "BBB")
    assert set(keys(samples)) == expected
    assert len(keys(samples)) == len(expected)
    assert samples.dropped_jumps == 0


def test_a_split_sized_jump_drops_the_runs_holding_it_and_counts_them() -> None:
    frame = make_frame(bars=60)
    split_at = 30
    ts = sorted(frame["ts"].unique())
    halves = (frame["symbol"] == "AAA") & (frame["ts"] >= ts[split_at])
    frame.loc[halves, "close"] *= 0.5  # a 2:1 split, raw closes

    samples = samples_from_frame(frame, window=WINDOW, horizon=HORIZON)

    # A run holds the jump when it holds both bars split_at - 1 and split_at.
    holding = runs_touching(split_at, "AAA") & runs_touching(split_at - 1, "AAA")
    assert len(holding) == SPAN - 1
    assert set(keys(samples)) == all_runs(60, ("AAA", "BBB")) - holding
    assert samples.dropped_jumps == SPAN - 1


def test_the_largest_daily_move_kept_is_below_the_split_bar() -> None:
    frame = make_frame(bars=60)
    aaa = frame["symbol"] == "AAA"
    close = frame.loc[aaa, "close"].to_numpy()
    big_day = np.exp(MAX_BAR_MOVE - 1e-3) * close[29] / close[30]  # a 39.9 % day, not a split
    frame.loc[aaa & (frame.index >= frame.index[aaa][30]), "close"] *= big_day
    samples = samples_from_frame(frame, window=WINDOW, horizon=HORIZON)
    assert set(keys(samples)) == all_runs(60, ("AAA", "BBB"))
    assert samples.dropped_jumps == 0


# --- labels -------------------------------------------------------------------------------


def samples_of(windows: list[np.ndarray], futures: list[np.ndarray]) -> Samples:
    """Samples built by hand: each window's closes (volume 1) and the closes after it."""
    x = np.stack([np.stack([w, np.ones_like(w)], axis=1) for w in windows]).astype(np.float32)
    n = len(windows)
    return Samples(
        x=x,
        future=np.stack(futures),
        end=np.arange(n, dtype=np.int64),
        symbol=np.zeros(n, dtype=np.int64),
        dates=pd.bdate_range("2021-01-04", periods=n, tz="UTC"),
        symbols=("AAA",),
        dropped_jumps=0,
    )


def window_with_volatility(sigma: float, length: int = 21) -> np.ndarray:
    """Closes whose one-bar log returns alternate +sigma, -sigma: their std is sigma."""
    steps = sigma * np.where(np.arange(length - 1) % 2 == 0, 1.0, -1.0)
    closes: np.ndarray = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(steps)]))
    return closes


def future_after(window: np.ndarray, log_move: float, horizon: int = 4) -> np.ndarray:
    """The window's last close, then a straight path `log_move` up (or down) over `horizon`."""
    last = float(window.astype(np.float32)[-1])
    return last * np.exp(np.linspace(0.0, log_move, horizon + 1))


def test_labels_are_up_down_and_flat_against_the_window_own_volatility() -> None:
    calm = window_with_volatility(0.01)  # flat band at 0.5: |move| <= 0.5 x 0.01 x 2 = 0.01
    windows = [calm] * 5
    moves = [0.05, -0.05, 0.0, 0.004, -0.004]
    labels = direction_labels(
        samples_of(windows, [future_after(w, m) for w, m in zip(windows, moves, strict=True)]),
        threshold=0.5,
    )
    assert labels.tolist() == [UP, DOWN, FLAT, FLAT, FLAT]


def test_the_same_move_is_a_move_for_a_calm_window_and_noise_for_a_wild_one() -> None:
    calm, wild = window_with_volatility(0.002), window_with_volatility(0.05)
    windows = [calm, wild, calm, wild, wild]
    moves = [0.03, 0.03, -0.03, -0.03, 0.3]  # the wild window's band is 0.5 x 0.05 x 2 = 0.05
    samples = samples_of(windows, [future_after(w, m) for w, m in zip(windows, moves, strict=True)])
    assert direction_labels(samples, threshold=0.5).tolist() == [UP, FLAT, DOWN, FLAT, UP]
    # A higher threshold widens every band: the calm 3 % is still a move at 2, not at 10.
    assert direction_labels(samples, threshold=2.0).tolist()[:3] == [UP, FLAT, DOWN]
    assert direction_labels(samples, threshold=10.0).tolist()[:3] == [FLAT, FLAT, FLAT]


# --- data hash ----------------------------------------------------------------------------


def test_data_hash_ignores_row_order_and_other_columns_but_sees_one_close() -> None:
    frame = make_frame()
    digest = data_hash(frame)
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert data_hash(frame.sample(frac=1.0, random_state=7)) == digest
    assert data_hash(frame.assign(open=frame["close"] * 1.01)) == digest

    close, volume = frame["close"].to_numpy().copy(), frame["volume"].to_numpy().copy()
    close[17] += 0.01
    volume[33] += 1.0
    assert data_hash(frame.assign(close=close)) != digest
    assert data_hash(frame.assign(volume=volume)) != digest


# --- errors -------------------------------------------------------------------------------


def test_too_short_a_history_is_refused_with_the_sizes() -> None:
    frame = make_frame(bars=SPAN - 1)
    with pytest.raises(ValueError, match=r"no complete run of 14 bars \(10 window \+ 4 ahead\)"):
        samples_from_frame(frame, window=WINDOW, horizon=HORIZON)
    with pytest.raises(ValueError, match=r"in 2 symbols over 13 bars"):
        samples_from_frame(frame, window=WINDOW, horizon=HORIZON)


@pytest.mark.parametrize(("window", "horizon", "stride"), [(2, 4, 1), (10, 0, 1), (10, 4, 0)])
def test_degenerate_sizes_are_refused(window: int, horizon: int, stride: int) -> None:
    with pytest.raises(ValueError, match=rf"got {window}, {horizon}, {stride}"):
        samples_from_frame(make_frame(), window=window, horizon=horizon, stride=stride)
