"""The pattern engine: streaming state against batch references, and its two entry points agree."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from pydantic import ValidationError

from models.enums import Side, Timeframe
from realtime.patterns.config import PatternConfig, SignalKind
from realtime.patterns.engine import PatternEngine, PatternSignal, datetime_to_ns, ns_to_datetime
from services.vendors.bar_file import read_bar_file
from tests.conftest import SHARED_DATA

MINUTE_FILE = SHARED_DATA / "index_future_1min_2006.csv.gz"
T0 = datetime_to_ns(datetime(2024, 3, 4, 14, 30, tzinfo=UTC))
SECOND = 1_000_000_000
RTOL = 1e-9


@pytest.fixture(scope="module")
def minute_bars() -> pd.DataFrame:
    """The real minute bars, read by the importer's reader; a tick is a bar's close at its end."""
    if not MINUTE_FILE.exists():
        pytest.skip(f"{MINUTE_FILE} is not here (the shared data sits beside the checkout)")
    bars = read_bar_file(MINUTE_FILE, timeframe=Timeframe.M1, symbol="FUT")
    bars = bars.sort_values("ts").reset_index(drop=True)
    bars["ts_ns"] = (bars["ts"] + pd.Timedelta(minutes=1)).astype("int64")
    if bars["ts"].dt.unit != "ns":  # pandas 3 may keep microseconds
        bars["ts_ns"] = (
            (bars["ts"] + pd.Timedelta(minutes=1)).dt.as_unit("ns").astype("int64").to_numpy()
        )
    return bars


def _trace(engine: PatternEngine, bars: pd.DataFrame, symbol: str = "FUT") -> pd.DataFrame:
    """Feed every bar through on_tick and record the whole state after each."""
    rows = []
    for price, size, ts in zip(
        bars["close"].tolist(), bars["volume"].tolist(), bars["ts_ns"].tolist(), strict=True
    ):
        engine.on_tick(symbol, price, size, ts)
        rows.append(engine.state(symbol))
    return pd.DataFrame(rows)


def _close(actual: pd.Series | np.ndarray[Any, Any], expected: Any, what: str) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float),
        np.asarray(expected, dtype=float),
        rtol=RTOL,
        atol=0,
        equal_nan=True,
        err_msg=what,
    )


def test_streaming_state_equals_a_batch_recomputation_on_real_minute_bars(
    minute_bars: pd.DataFrame,
) -> None:
    cfg = PatternConfig(session_utc_offset_minutes=0)
    trace = _trace(PatternEngine(cfg), minute_bars)
    close, volume = minute_bars["close"], minute_bars["volume"].astype(float)
    day = pd.to_datetime(minute_bars["ts_ns"], utc=True).dt.date

    for span in cfg.ema_spans:
        _close(trace[f"ema_{span}"], close.ewm(span=span, adjust=False).mean(), f"ema_{span}")
    vwap = (close * volume).groupby(day).cumsum() / volume.groupby(day).cumsum()
    _close(trace["vwap"], vwap, "session vwap")
    _close(trace["session_volume"], volume.groupby(day).cumsum(), "session volume")
    _close(
        trace["session_mean"],
        close.groupby(day).cumsum() / (close.groupby(day).cumcount() + 1),
        "session mean",
    )
    _close(trace["session_var"], close.groupby(day).expanding().var().to_numpy(), "session var")

    w = cfg.zscore_window
    # The exact rolling variance, two-pass per window (pandas' own rolling var drifts more).
    windows = np.lib.stride_tricks.sliding_window_view(close.to_numpy(), w)
    exact_var = np.concatenate(
        [close.expanding().var().to_numpy()[: w - 1], windows.var(axis=1, ddof=1)]
    )
    _close(trace["rolling_var"], exact_var, "rolling variance")
    _close(trace["rolling_mean"], close.rolling(w, min_periods=1).mean(), "rolling mean")
    prior_std = np.sqrt(pd.Series(exact_var).shift(1))
    z = (close - trace["rolling_mean"].shift(1)) / prior_std
    z[:w] = np.nan
    _close(trace["z"], z, "z-score against the prior window")
    b = cfg.breakout_window
    _close(trace["high"], close.rolling(b, min_periods=1).max(), "rolling high")
    _close(trace["low"], close.rolling(b, min_periods=1).min(), "rolling low")
    _close(
        trace["volume_mean"],
        volume.rolling(cfg.volume_window, min_periods=1).mean(),
        "rolling mean volume",
    )
    assert trace["session_ticks"].iloc[-1] == (day == day.iloc[-1]).sum()
    assert day.nunique() == 41  # the file's sessions, each one restarting the VWAP


def test_sma_seeded_emas_and_the_window_deviation_agree_with_ta_lib(
    minute_bars: pd.DataFrame,
) -> None:
    cfg = PatternConfig(ema_seed="sma", session_utc_offset_minutes=0)
    trace = _trace(PatternEngine(cfg), minute_bars)
    close = minute_bars["close"].to_numpy(dtype=float)
    for span in cfg.ema_spans:
        expected = talib.EMA(close, timeperiod=span)
        assert np.isnan(trace[f"ema_{span}"].to_numpy()[: span - 1]).all()
        _close(trace[f"ema_{span}"], expected, f"ema_{span} vs TA-Lib")
    w = cfg.zscore_window
    population_std = np.sqrt(trace["rolling_var"] * (w - 1) / w)
    _close(population_std[w - 1 :], talib.STDDEV(close, timeperiod=w, nbdev=1)[w - 1 :], "stddev")


def test_first_price_seeding_converges_to_ta_lib_and_says_how_far_apart_it_starts(
    minute_bars: pd.DataFrame,
) -> None:
    close = minute_bars["close"].to_numpy(dtype=float)
    trace = _trace(PatternEngine(PatternConfig(session_utc_offset_minutes=0)), minute_bars[:2000])
    ours, theirs = trace["ema_21"].to_numpy(), talib.EMA(close[:2000], timeperiod=21)
    early = abs(ours[25] - theirs[25])
    late = abs(ours[1999] - theirs[1999])
    assert early > 1e-6  # the seeding conventions differ, visibly, at first
    assert late < 1e-9 * close[1999]  # and the difference decays as (1 - a)^n


def _stream(n: int, symbols: int, seed: int) -> dict[str, np.ndarray[Any, Any]]:
    """Zipf-skewed ticks: each symbol its own random walk, bursts, gaps, a few bad ticks."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, symbols + 1) ** 1.1
    sids = rng.choice(symbols, size=n, p=weights / weights.sum()).astype(np.int64)
    steps = rng.normal(0, 2e-3, n) + np.where(rng.random(n) < 0.01, rng.normal(0, 0.03, n), 0)
    prices = np.empty(n)
    level = np.full(symbols, 50.0)
    for i, s in enumerate(sids):
        level[s] *= np.exp(steps[i])
        prices[i] = level[s]
    sizes = rng.lognormal(4, 1, n) * np.where(rng.random(n) < 0.01, 20, 1)
    ts = T0 + np.cumsum(rng.integers(1, 3 * SECOND, n))
    bad = rng.choice(n, size=5, replace=False)
    prices[bad[:2]] = np.nan
    sizes[bad[2:4]] = -1.0
    sizes[bad[4]] = np.inf
    return {"sids": sids, "prices": prices, "sizes": sizes, "ts": ts}


@pytest.mark.parametrize("cooldown_s", [0.0, 30.0])
def test_on_tick_and_on_batch_leave_identical_state_and_identical_signals(
    cooldown_s: float,
) -> None:
    ticks = _stream(40_000, 37, seed=7)
    cfg = PatternConfig(cooldown_s=cooldown_s, zscore_threshold=2.0)
    one, many = PatternEngine(cfg, capacity=4), PatternEngine(cfg, capacity=4)
    names = [f"S{i:02d}" for i in range(37)]
    for name in names:
        one.symbol_id(name)
        many.symbol_id(name)

    by_tick: list[PatternSignal] = []
    for sid, price, size, ts in zip(
        ticks["sids"].tolist(),
        ticks["prices"].tolist(),
        ticks["sizes"].tolist(),
        ticks["ts"].tolist(),
        strict=True,
    ):
        by_tick.extend(one.on_tick(names[sid], price, size, ts))
    # micro-batches of ragged sizes, as a source would hand them over
    by_batch: list[PatternSignal] = []
    cuts = [0, 1, 2, 500, 501, 9_000, 25_000, 40_000]
    for lo, hi in itertools.pairwise(cuts):
        batch = many.on_batch(
            ticks["sids"][lo:hi], ticks["prices"][lo:hi], ticks["sizes"][lo:hi], ticks["ts"][lo:hi]
        )
        by_batch.extend(batch.to_signals())

    np.testing.assert_array_equal(one.F, many.F)
    np.testing.assert_array_equal(one.I, many.I)
    np.testing.assert_array_equal(one.R, many.R)
    assert len(by_tick) > 4096  # more than one output buffer: the resume path ran
    # NaN features (a window not yet full) never equal themselves: compare the published form
    assert [(s.ts_ns, s.as_message()) for s in by_tick] == [
        (s.ts_ns, s.as_message()) for s in by_batch
    ]
    assert {s.kind for s in by_tick} == set(SignalKind)
    assert one.ticks == many.ticks == 40_000
    assert sum(one.state(n)["rejected"] for n in names) == 5


def _engine(**overrides: Any) -> PatternEngine:
    base: dict[str, Any] = {
        "ema_spans": (3, 6),
        "cross_fast": 3,
        "cross_slow": 6,
        "zscore_window": 10,
        "breakout_window": 5,
        "volume_window": 5,
        "vwap_min_ticks": 3,
        "cooldown_s": 0,
        "session_utc_offset_minutes": 0,
    }
    return PatternEngine(PatternConfig(**(base | overrides)))


def _feed(
    engine: PatternEngine, prices: list[float], sizes: list[float] | None = None, start: int = T0
) -> list[PatternSignal]:
    out: list[PatternSignal] = []
    for i, price in enumerate(prices):
        size = sizes[i] if sizes else 100.0
        out.extend(engine.on_tick("AAA", price, size, start + i * SECOND))
    return out


def _kinds(signals: list[PatternSignal]) -> list[SignalKind]:
    return [s.kind for s in signals]


def test_a_price_far_outside_the_window_is_a_zscore_breakout_with_its_sign() -> None:
    engine = _engine(enabled=frozenset({SignalKind.ZSCORE_BREAKOUT}))
    calm = [100.0 + 0.1 * (i % 3) for i in range(12)]
    up = _feed(engine, [*calm, 103.0])
    assert _kinds(up) == [SignalKind.ZSCORE_BREAKOUT]
    assert up[0].score > 3
    assert up[0].side is Side.BUY
    assert up[0].price == 103.0
    assert up[0].features["z"] == pytest.approx(up[0].score)
    engine = _engine(enabled=frozenset({SignalKind.ZSCORE_BREAKOUT}))
    down = _feed(engine, [*calm, 97.0])
    assert down[0].score < -3
    assert down[0].side is Side.SELL


def test_the_cooldown_keeps_a_noisy_symbol_from_firing_a_burst() -> None:
    engine = _engine(enabled=frozenset({SignalKind.HIGH_BREAKOUT}), cooldown_s=10)
    # a new high every second for 25 s: fires at 0 s, 10 s and 20 s of the run
    signals = _feed(engine, [100.0] * 5 + [100.0 + i for i in range(1, 26)])
    times = [(s.ts_ns - T0) // SECOND for s in signals]
    assert times == [5, 15, 25]


def test_new_highs_and_lows_beyond_the_prior_window_are_breakouts() -> None:
    engine = _engine(enabled=frozenset({SignalKind.HIGH_BREAKOUT, SignalKind.LOW_BREAKOUT}))
    signals = _feed(engine, [10, 11, 12, 11, 10, 12.0, 12.5, 9.5])
    assert [(s.kind, s.price) for s in signals] == [
        (SignalKind.HIGH_BREAKOUT, 12.5),
        (SignalKind.LOW_BREAKOUT, 9.5),
    ]
    assert signals[0].score == pytest.approx((12.5 / 12 - 1) * 1e4)
    assert signals[1].side is Side.SELL


def test_ema_crossings_fire_up_and_down_after_the_slow_span() -> None:
    engine = _engine(enabled=frozenset({SignalKind.EMA_CROSS_UP, SignalKind.EMA_CROSS_DOWN}))
    signals = _feed(engine, [100.0] * 8 + [99.0] * 6 + [102.0] * 6)
    assert _kinds(signals) == [SignalKind.EMA_CROSS_DOWN, SignalKind.EMA_CROSS_UP]
    assert signals[0].side is Side.SELL
    assert signals[1].side is Side.BUY
    state = engine.state("AAA")
    assert state["ema_3"] > state["ema_6"]


def test_vwap_reclaim_and_loss_need_a_few_ticks_of_the_session() -> None:
    engine = _engine(enabled=frozenset({SignalKind.VWAP_RECLAIM, SignalKind.VWAP_LOSS}))
    # ticks 1 and 2 cross the VWAP too, but only 1 and 2 ticks of the session came before
    signals = _feed(engine, [100, 98, 103, 101, 102, 103, 98, 104])
    assert [(s.kind, s.price) for s in signals] == [
        (SignalKind.VWAP_LOSS, 98),
        (SignalKind.VWAP_RECLAIM, 104),
    ]
    assert signals[1].features["vwap"] == pytest.approx(809 / 8)
    assert signals[1].score == pytest.approx((104 / (809 / 8) - 1) * 1e4)


def test_a_size_far_above_the_mean_is_a_volume_spike() -> None:
    engine = _engine(enabled=frozenset({SignalKind.VOLUME_SPIKE}))
    signals = _feed(engine, [100.0] * 7, sizes=[100, 120, 80, 100, 100, 900, 300])
    assert len(signals) == 1
    assert signals[0].score == pytest.approx(9.0)
    assert signals[0].size == 900


def test_the_session_vwap_restarts_at_the_session_boundary() -> None:
    engine = _engine(session_utc_offset_minutes=-300)  # New York: the day turns at 05:00 UTC
    late = datetime_to_ns(datetime(2024, 3, 5, 4, 59, tzinfo=UTC))
    engine.on_tick("AAA", 100.0, 100.0, late)
    engine.on_tick("AAA", 110.0, 300.0, late + 30 * SECOND)
    assert engine.state("AAA")["vwap"] == pytest.approx(107.5)
    engine.on_tick("AAA", 120.0, 50.0, late + 61 * SECOND)
    state = engine.state("AAA")
    assert state["vwap"] == 120.0
    assert state["session_ticks"] == 1
    assert state["session_volume"] == 50.0
    assert state["ticks"] == 3  # the rolling windows and EMAs run on across sessions


def test_bad_ticks_are_counted_and_change_nothing_else() -> None:
    engine = _engine()
    _feed(engine, [100.0, 101.0])
    before = engine.state("AAA")
    for price, size in [(float("nan"), 1.0), (100.0, -5.0), (float("inf"), 1.0)]:
        assert engine.on_tick("AAA", price, size, T0 + 10 * SECOND) == ()
    after = engine.state("AAA")
    assert after.pop("rejected") == 3
    before.pop("rejected")
    assert after.keys() == before.keys()
    np.testing.assert_array_equal(list(after.values()), list(before.values()))  # NaN == NaN here


def test_symbols_registered_past_the_capacity_keep_their_state() -> None:
    engine = PatternEngine(capacity=2)
    for i in range(50):
        engine.on_tick(f"S{i}", 10.0 + i, 1.0, T0 + i)
    assert engine.symbols[:3] == ["S0", "S1", "S2"]
    assert [engine.state(f"S{i}")["price"] for i in (0, 1, 49)] == [10.0, 11.0, 59.0]


def test_on_batch_refuses_ids_it_never_issued_and_arrays_of_different_lengths() -> None:
    engine = PatternEngine()
    engine.symbol_id("AAA")
    ones = np.ones(3)
    with pytest.raises(ValueError, match="never issued"):
        engine.on_batch(np.array([0, 1, 0]), ones, ones, np.arange(3))
    with pytest.raises(ValueError, match="one length"):
        engine.on_batch(np.array([0, 0]), ones, ones, np.arange(3))
    none = np.zeros(0, dtype=np.int64)
    assert len(engine.on_batch(none, np.zeros(0), np.zeros(0), none)) == 0


def test_configs_that_cannot_work_are_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="cross_slow=30 is not one of"):
        PatternConfig(ema_spans=(8, 21), cross_slow=30)
    with pytest.raises(ValidationError, match="must be below"):
        PatternConfig(cross_fast=21, cross_slow=8)
    with pytest.raises(ValidationError, match="distinct"):
        PatternConfig(ema_spans=(8, 8, 21))
    merged = PatternConfig.from_params({"zscore_threshold": 2.5}, PatternConfig(cooldown_s=5))
    assert (merged.zscore_threshold, merged.cooldown_s) == (2.5, 5)
    with pytest.raises(ValidationError):
        PatternConfig.from_params({"no_such_knob": 1})


def test_event_times_round_trip_and_naive_times_are_refused() -> None:
    when = datetime(2024, 3, 4, 14, 30, 1, 123456, tzinfo=UTC)
    assert ns_to_datetime(datetime_to_ns(when)) == when
    with pytest.raises(ValueError, match="naive"):
        datetime_to_ns(datetime(2024, 3, 4))
