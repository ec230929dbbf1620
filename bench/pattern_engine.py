"""Benchmark: the numba pattern engine against talipp, measured in the same run.

The stream: `--ticks` Zipf-skewed ticks (weight of the symbol of rank r
~ 1/r^1.1) over `--symbols` symbols from a seeded generator. Every symbol
takes its own random walk (log-price steps of 2 bp, rounded to the cent),
sizes are lognormal round lots, and the market-wide clock advances by
exponential gaps of 500 us on average (~2,000 ticks/s, so 1,000,000 ticks
span about 8 minutes of event time, inside one session). Generated up front,
not timed. A second stream replays the shared minute file of an index
future (each bar's close as a tick at the bar's end).

Measured, each best of `--repeat`, every timing on a fresh engine whose
kernels were compiled (and warmed) on a separate engine beforehand, with the
garbage collector off inside the timed loops (for the baseline too):

* `on_batch`: the whole stream in one call, and in micro-batches of
  `--micro` ticks; the signals fired; `SignalBatch.to_signals()` timed apart;
* `on_tick`: Python str/float/int arguments (converted before timing); ticks/s
  from the wall time of a loop without per-call timers, then a second loop
  timing every call with `time.perf_counter_ns` for p50/p99/p99.9, the p99 of
  the ticks that fired no signal, and the timer's own cost (back-to-back
  `perf_counter_ns` pairs);
* baseline: talipp, one `EMA` per span (8, 21, 55) and one `StdDev(60)` per
  symbol, fed the first `--talipp-ticks` ticks in the same order; the engine's
  `on_tick` is timed on the same prefix for the like-for-like ratio;
* agreement: an engine with `ema_seed="sma"` (TA-Lib/talipp seeding) against
  talipp's EMA and StdDev on every tick of a few symbols (talipp's StdDev is
  the population one, ddof=0; the engine keeps the sample variance, ddof=1),
  and against TA-Lib's EMA/STDDEV on the same prices;
* the order book's updates/s, from `bench/order_book.py` if present.

Targets (the issue's): on_tick p99 <= 2 us, on_tick >= 10x talipp's ticks/s,
on_batch >= 10 M ticks/s. Reported PASS/MISS; nothing is asserted.

Usage: python bench/pattern_engine.py [--ticks 1000000] [--symbols 500] [--seed 1]
                                      [--talipp-ticks 0 (all)] [--micro 1000]
                                      [--repeat 3] [--book-messages 200000]
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import math
import os
import platform
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import talib
from talipp.indicators import EMA, StdDev  # type: ignore[import-untyped]

from models.enums import Timeframe
from realtime.patterns.config import PatternConfig
from realtime.patterns.engine import PatternEngine
from services.vendors.bar_file import read_bar_file

T = TypeVar("T")
FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

MINUTE_FILE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "index_future_1min_2006.csv.gz"
)
T0_NS = 1_767_623_400 * 1_000_000_000  # 2026-01-05 14:30 UTC, a Monday's open
ZIPF_EXPONENT = 1.1
MEAN_GAP_NS = 500_000  # ~2,000 ticks/s market-wide
STEP_SIGMA = 2e-4  # log-price step per tick of a symbol
STD_PERIOD = 60  # talipp StdDev, the engine's zscore_window
TARGET_TICK_P99_NS = 2_000
TARGET_TALIPP_RATIO = 10.0
TARGET_BATCH_TICKS_PER_S = 10e6


@dataclass(frozen=True)
class Ticks:
    names: list[str]  # symbol of id i
    sids: IntArray
    prices: FloatArray
    sizes: FloatArray
    ts_ns: IntArray

    def __len__(self) -> int:
        return int(self.sids.shape[0])

    def head(self, n: int) -> Ticks:
        return Ticks(self.names, self.sids[:n], self.prices[:n], self.sizes[:n], self.ts_ns[:n])

    def as_python(self) -> tuple[list[str], list[float], list[float], list[int]]:
        """on_tick's arguments as a live feed hands them over: str, float, float, int."""
        names = self.names
        symbols = [names[sid] for sid in self.sids.tolist()]
        return symbols, self.prices.tolist(), self.sizes.tolist(), self.ts_ns.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--talipp-ticks", type=int, default=0, help="prefix fed to talipp; 0 = all")
    parser.add_argument("--micro", type=int, default=1_000, help="on_batch micro-batch size")
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings")
    parser.add_argument(
        "--book-messages", type=int, default=200_000, help="order-book messages; 0 = skip"
    )
    args = parser.parse_args()
    repeat = max(1, args.repeat)

    print(f"machine: {_machine()}")
    print(f"load average at start: {_load()}")
    started = time.perf_counter()
    busy0, own0 = _busy_s(), _own_s()
    ticks = make_ticks(args.ticks, args.symbols, args.seed)
    counts = np.bincount(ticks.sids, minlength=args.symbols)
    span_s = (int(ticks.ts_ns[-1]) - int(ticks.ts_ns[0])) / 1e9
    print(
        f"stream: {len(ticks):,} ticks, {args.symbols} symbols (Zipf {ZIPF_EXPONENT}: busiest "
        f"{counts.max():,} ticks, median {int(np.median(counts)):,}, quietest {counts.min():,}), "
        f"{span_s:,.0f} s of event time ({len(ticks) / span_s:,.0f} ticks/s), "
        f"generated in {time.perf_counter() - started:.1f} s"
    )
    compile_s = warm_up(ticks)
    print(f"warm-up (JIT compile or load from cache, on a separate engine): {compile_s:.1f} s")

    results: dict[str, float] = {}
    results |= bench_batch(ticks, args.micro, repeat)
    results |= bench_tick(ticks, repeat)
    prefix = len(ticks) if args.talipp_ticks <= 0 else min(args.talipp_ticks, len(ticks))
    results |= bench_talipp(ticks, prefix, repeat)
    agreement = check_agreement(ticks.head(prefix))
    replay = bench_replay(repeat)
    book = bench_book(args.book_messages, args.seed)
    wall = time.perf_counter() - started
    others = (_busy_s() - busy0 - (_own_s() - own0)) / wall
    print(
        f"load average at end: {_load()}; other processes used {others:.2f} cores on average "
        f"over the {wall:.0f} s run (from /proc/stat; near 0 means a quiet machine)"
    )
    print()
    _print_results(results, len(ticks), prefix, args.micro, replay, book)
    print()
    _print_agreement(agreement)


# --- the stream


def make_ticks(n: int, symbols: int, seed: int) -> Ticks:
    """Seeded Zipf-skewed ticks; each symbol its own random walk; increasing event times."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, symbols + 1) ** ZIPF_EXPONENT
    sids = rng.choice(symbols, size=n, p=weights / weights.sum()).astype(np.int64)
    # Per-symbol walks: cumulative sums of the steps within each symbol, in arrival order.
    steps = rng.normal(0.0, STEP_SIGMA, n)
    order = np.argsort(sids, kind="stable")
    walk = np.cumsum(steps[order])
    starts = np.searchsorted(sids[order], np.arange(symbols))
    first = np.zeros(symbols)
    has = starts < n
    first[has] = walk[starts[has]] - steps[order][starts[has]]  # the sum before each group
    log_path = np.empty(n)
    log_path[order] = walk - first[sids[order]]
    open_prices = np.exp(rng.uniform(np.log(5.0), np.log(1000.0), symbols))
    prices = np.maximum(0.01, np.round(open_prices[sids] * np.exp(log_path), 2))
    sizes = np.maximum(1.0, np.round(rng.lognormal(np.log(100.0), 1.0, n)))
    gaps = np.maximum(1, rng.exponential(MEAN_GAP_NS, n).astype(np.int64))
    ts_ns = T0_NS + np.cumsum(gaps)
    names = [f"S{i:04d}" for i in range(symbols)]
    return Ticks(names, sids, prices, sizes, ts_ns.astype(np.int64))


def new_engine(names: list[str], config: PatternConfig | None = None) -> PatternEngine:
    engine = PatternEngine(config, capacity=len(names))
    for name in names:
        engine.symbol_id(name)
    return engine


def warm_up(ticks: Ticks) -> float:
    """Compile (or load) both kernels and run the decoding paths once, on a throwaway engine."""
    started = time.perf_counter()
    sample = ticks.head(min(len(ticks), 20_000))
    for config in (PatternConfig(), PatternConfig(ema_seed="sma")):
        engine = new_engine(ticks.names, config)
        engine.on_batch(sample.sids, sample.prices, sample.sizes, sample.ts_ns).to_signals()
        on_tick = engine.on_tick
        for args in zip(*sample.as_python(), strict=True):
            on_tick(*args)
    return time.perf_counter() - started


# --- on_batch


def bench_batch(ticks: Ticks, micro: int, repeat: int) -> dict[str, float]:
    n = len(ticks)
    out: dict[str, float] = {}
    whole_s, signals, decode_s = math.inf, 0, math.inf
    for _ in range(repeat):
        engine = new_engine(ticks.names)
        with _no_gc():
            seconds, batch = _timed(
                functools.partial(
                    engine.on_batch, ticks.sids, ticks.prices, ticks.sizes, ticks.ts_ns
                )
            )
            decode, decoded = _timed(batch.to_signals)
        whole_s, decode_s = min(whole_s, seconds), min(decode_s, decode)
        signals = len(batch)
        assert len(decoded) == signals
    out["batch_s"] = whole_s
    out["batch_tps"] = n / whole_s
    out["batch_signals"] = signals
    out["to_signals_s"] = decode_s
    out["to_signals_us_per_signal"] = decode_s / max(signals, 1) * 1e6

    micro_s, micro_signals = math.inf, 0
    bounds = list(range(0, n, micro))
    for _ in range(repeat):
        engine = new_engine(ticks.names)
        on_batch = engine.on_batch
        fired = 0
        with _no_gc():
            t0 = time.perf_counter_ns()
            for lo in bounds:
                hi = lo + micro
                fired += len(
                    on_batch(
                        ticks.sids[lo:hi],
                        ticks.prices[lo:hi],
                        ticks.sizes[lo:hi],
                        ticks.ts_ns[lo:hi],
                    )
                )
            micro_s = min(micro_s, (time.perf_counter_ns() - t0) / 1e9)
        micro_signals = fired
    out["micro_s"] = micro_s
    out["micro_tps"] = n / micro_s
    out["micro_signals"] = micro_signals
    out["micro_us_per_call"] = micro_s / len(bounds) * 1e6
    return out


# --- on_tick


def bench_tick(ticks: Ticks, repeat: int) -> dict[str, float]:
    n = len(ticks)
    symbols, prices, sizes, stamps = ticks.as_python()
    out: dict[str, float] = {}

    best = math.inf
    signals = 0
    for _ in range(repeat):
        engine = new_engine(ticks.names)
        best = min(best, _tick_loop(engine, symbols, prices, sizes, stamps))
        signals = engine.signals
    out["tick_s"] = best
    out["tick_tps"] = n / best
    out["tick_signals"] = signals

    # Per-call latencies: one more pass, every call bracketed by perf_counter_ns.
    engine = new_engine(ticks.names)
    lat = [0] * n
    fired = [False] * n
    on_tick = engine.on_tick
    clock = time.perf_counter_ns
    with _no_gc():
        for i, (s, p, v, t) in enumerate(zip(symbols, prices, sizes, stamps, strict=True)):
            t0 = clock()
            got = on_tick(s, p, v, t)
            lat[i] = clock() - t0
            fired[i] = bool(got)
    lat_ns = np.array(lat, dtype=np.int64)
    mask = np.array(fired, dtype=bool)
    overhead = np.empty(n, dtype=np.int64)
    with _no_gc():
        for i in range(n):
            overhead[i] = -clock() + clock()
    for q, key in ((50, "p50"), (99, "p99"), (99.9, "p999")):
        out[f"tick_{key}_ns"] = float(np.percentile(lat_ns, q))
        out[f"timer_{key}_ns"] = float(np.percentile(overhead, q))
    out["tick_max_ns"] = float(lat_ns.max())
    out["tick_quiet_p99_ns"] = float(np.percentile(lat_ns[~mask], 99))
    out["tick_fired_share"] = float(mask.mean())
    out["tick_fired_p50_ns"] = float(np.percentile(lat_ns[mask], 50)) if mask.any() else math.nan
    return out


def _tick_loop(
    engine: PatternEngine,
    symbols: list[str],
    prices: list[float],
    sizes: list[float],
    stamps: list[int],
) -> float:
    """Seconds for every tick through on_tick, no per-call timer."""
    on_tick = engine.on_tick
    with _no_gc():
        t0 = time.perf_counter_ns()
        for s, p, v, t in zip(symbols, prices, sizes, stamps, strict=True):
            on_tick(s, p, v, t)
        return (time.perf_counter_ns() - t0) / 1e9


# --- the talipp baseline


def talipp_indicators(spans: tuple[int, ...]) -> tuple[list[EMA], StdDev]:
    return [EMA(period=span) for span in spans], StdDev(period=STD_PERIOD)


def bench_talipp(ticks: Ticks, prefix: int, repeat: int) -> dict[str, float]:
    head = ticks.head(prefix)
    symbols, prices, sizes, stamps = head.as_python()
    spans = PatternConfig().ema_spans
    best = math.inf
    for _ in range(repeat):
        books = {name: talipp_indicators(spans) for name in ticks.names}
        with _no_gc():
            t0 = time.perf_counter_ns()
            for s, p in zip(symbols, prices, strict=True):
                emas, std = books[s]
                for ema in emas:
                    ema.add(p)
                std.add(p)
            best = min(best, (time.perf_counter_ns() - t0) / 1e9)
        del books
        gc.collect()
    engine_best = math.inf
    for _ in range(repeat):
        engine_best = min(
            engine_best, _tick_loop(new_engine(ticks.names), symbols, prices, sizes, stamps)
        )
    return {
        "talipp_ticks": prefix,
        "talipp_s": best,
        "talipp_tps": prefix / best,
        "tick_prefix_tps": prefix / engine_best,
    }


# --- agreement with talipp and TA-Lib


@dataclass(frozen=True)
class Agreement:
    symbol: str
    ticks: int
    defined_same: bool  # NaN in the engine exactly where talipp has None
    ema_diff: float  # max |engine - talipp| over the three EMAs and every tick
    std_diff: float  # max |engine sample std - talipp std * sqrt(n / (n - 1))|
    pop_std_diff: float  # max |engine std * sqrt((n - 1) / n) - talipp std|
    talib_ema_diff: float
    talib_std_diff: float
    price_scale: float


def check_agreement(ticks: Ticks) -> list[Agreement]:
    """Engine (ema_seed="sma") against talipp and TA-Lib, every tick of a few symbols."""
    counts = np.bincount(ticks.sids, minlength=len(ticks.names))
    ranked = np.argsort(-counts, kind="stable")
    eligible = [int(s) for s in ranked if counts[s] >= 2 * STD_PERIOD]
    picks = sorted(
        {eligible[0], eligible[len(eligible) // 2], eligible[-1]}, key=lambda s: -counts[s]
    )
    config = PatternConfig(ema_seed="sma")
    spans = config.ema_spans
    engine = new_engine(ticks.names, config)
    results = []
    for sid in picks:
        name = ticks.names[sid]
        rows = np.flatnonzero(ticks.sids == sid)
        prices = ticks.prices[rows]
        emas, std = talipp_indicators(spans)
        ours = np.empty((rows.shape[0], len(spans) + 1))
        for j, (p, v, t) in enumerate(
            zip(
                prices.tolist(), ticks.sizes[rows].tolist(), ticks.ts_ns[rows].tolist(), strict=True
            )
        ):
            engine.on_tick(name, p, v, t)
            for ema in emas:
                ema.add(p)
            std.add(p)
            state = engine.state(name)
            ours[j, : len(spans)] = [state[f"ema_{span}"] for span in spans]
            ours[j, -1] = math.sqrt(state["rolling_var"]) if j + 1 >= STD_PERIOD else math.nan
        theirs = np.array(
            [[math.nan if x is None else x for x in ind.output_values] for ind in (*emas, std)]
        ).T
        defined_same = bool(np.array_equal(np.isnan(ours), np.isnan(theirs)))
        both = ~np.isnan(ours) & ~np.isnan(theirs)
        diff = np.where(both, np.abs(ours - theirs), 0.0)
        bessel = math.sqrt(STD_PERIOD / (STD_PERIOD - 1))
        sample_theirs = theirs[:, -1] * bessel
        std_both = both[:, -1]
        talib_ema = np.column_stack([talib.EMA(prices, timeperiod=span) for span in spans])
        talib_std = talib.STDDEV(prices, timeperiod=STD_PERIOD, nbdev=1.0) * bessel
        results.append(
            Agreement(
                symbol=name,
                ticks=int(rows.shape[0]),
                defined_same=defined_same,
                ema_diff=float(diff[:, : len(spans)].max()),
                std_diff=float(np.abs(ours[std_both, -1] - sample_theirs[std_both]).max()),
                pop_std_diff=float(
                    np.abs(ours[std_both, -1] / bessel - theirs[std_both, -1]).max()
                ),
                talib_ema_diff=float(np.nanmax(np.abs(ours[:, : len(spans)] - talib_ema))),
                talib_std_diff=float(np.nanmax(np.abs(ours[:, -1] - talib_std))),
                price_scale=float(np.median(prices)),
            )
        )
    return results


# --- minute-file replay


def bench_replay(repeat: int) -> dict[str, float]:
    if not MINUTE_FILE.exists():
        return {}
    frame = read_bar_file(MINUTE_FILE, timeframe=Timeframe.M1, symbol="FUT")
    ts_ns = pd.DatetimeIndex(frame["ts"]).as_unit("ns").asi8 + 60 * 1_000_000_000  # bar end
    ticks = Ticks(
        ["FUT"],
        np.zeros(len(frame), dtype=np.int64),
        frame["close"].to_numpy(dtype=np.float64),
        frame["volume"].to_numpy(dtype=np.float64),
        np.ascontiguousarray(ts_ns, dtype=np.int64),
    )
    # pandas hands out read-only arrays (copy-on-write); on_batch copies those (numba would
    # compile a second kernel for them); the first call is timed apart all the same.
    readonly = not (ticks.prices.flags.writeable and ticks.sizes.flags.writeable)
    warm_s, _ = _timed(
        functools.partial(
            new_engine(ticks.names).on_batch, ticks.sids, ticks.prices, ticks.sizes, ticks.ts_ns
        )
    )
    symbols, prices, sizes, stamps = ticks.as_python()
    tick_s, batch_s = math.inf, math.inf
    tick_signals = batch_signals = 0
    for _ in range(repeat):
        engine = new_engine(ticks.names)
        tick_s = min(tick_s, _tick_loop(engine, symbols, prices, sizes, stamps))
        tick_signals = engine.signals
        engine = new_engine(ticks.names)
        with _no_gc():
            seconds, batch = _timed(
                functools.partial(
                    engine.on_batch, ticks.sids, ticks.prices, ticks.sizes, ticks.ts_ns
                )
            )
        batch_s = min(batch_s, seconds)
        batch_signals = len(batch)
    return {
        "bars": len(ticks),
        "tick_tps": len(ticks) / tick_s,
        "batch_tps": len(ticks) / batch_s,
        "tick_signals": tick_signals,
        "batch_signals": batch_signals,
        "readonly": float(readonly),
        "warm_s": warm_s,
    }


# --- order book (another bench script)


def bench_book(messages: int, seed: int) -> dict[str, float] | str:
    """`measure_book_updates` of bench/order_book.py, or why there is no figure."""
    if messages <= 0:
        return "skipped (--book-messages 0)"
    try:
        module = importlib.import_module("order_book")
    except ImportError as exc:
        return f"missing: bench/order_book.py not importable ({exc})"
    measure: Callable[[int, int], dict[str, float]] | None = getattr(
        module, "measure_book_updates", None
    )
    if measure is None:
        return "missing: bench/order_book.py has no measure_book_updates"
    gc.collect()
    return measure(messages, seed)


# --- output


def _print_results(
    r: dict[str, float],
    n: int,
    prefix: int,
    micro: int,
    replay: dict[str, float],
    book: dict[str, float] | str,
) -> None:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    talipp_note = "all ticks" if prefix == n else f"first {prefix:,} ticks"
    ratio_same = r["tick_prefix_tps"] / r["talipp_tps"]
    ratio_full = r["tick_tps"] / r["talipp_tps"]
    ratio_batch = r["batch_tps"] / r["talipp_tps"]
    print(f"## Pattern engine: {n:,} ticks")
    print()
    print("| measure | value | vs talipp | target | verdict |")
    print("|---|---:|---:|---|---|")
    print(
        f"| on_batch, one call of {n:,} | {r['batch_tps'] / 1e6:.2f} M ticks/s | "
        f"{ratio_batch:,.0f}x | >= 10 M ticks/s | "
        f"{verdict(r['batch_tps'] >= TARGET_BATCH_TICKS_PER_S)} |"
    )
    print(
        f"| on_batch, micro-batches of {micro:,} | {r['micro_tps'] / 1e6:.2f} M ticks/s "
        f"({r['micro_us_per_call']:.0f} us/call) | {r['micro_tps'] / r['talipp_tps']:,.0f}x | | |"
    )
    print(
        f"| on_tick, ticks/s (loop, no timers) | {r['tick_tps'] / 1e6:.3f} M ticks/s "
        f"({1e9 / r['tick_tps']:,.0f} ns/tick) | {ratio_full:.1f}x | | |"
    )
    print(
        f"| on_tick on talipp's {talipp_note} | {r['tick_prefix_tps'] / 1e6:.3f} M ticks/s | "
        f"**{ratio_same:.1f}x** | >= 10x talipp | {verdict(ratio_same >= TARGET_TALIPP_RATIO)} |"
    )
    print(
        f"| talipp EMA x3 + StdDev(60), {talipp_note} | "
        f"{r['talipp_tps'] / 1e3:,.1f} k ticks/s ({1e9 / r['talipp_tps']:,.0f} ns/tick) | 1x | | |"
    )
    print(
        f"| on_tick latency p50 / p99 / p99.9 | {_ns(r['tick_p50_ns'])} / "
        f"**{_ns(r['tick_p99_ns'])}** / {_ns(r['tick_p999_ns'])} | | p99 <= 2 us | "
        f"{verdict(r['tick_p99_ns'] <= TARGET_TICK_P99_NS)} |"
    )
    print(
        f"| on_tick p99, ticks that fired nothing ({1 - r['tick_fired_share']:.2%}) | "
        f"{_ns(r['tick_quiet_p99_ns'])} | | | |"
    )
    print(
        f"| on_tick p50, ticks that fired ({r['tick_fired_share']:.2%}) | "
        f"{_ns(r['tick_fired_p50_ns'])} | | | |"
    )
    print(f"| on_tick max | {_ns(r['tick_max_ns'])} | | | |")
    print(
        f"| timer overhead p50 / p99 / p99.9 (included above) | {_ns(r['timer_p50_ns'])} / "
        f"{_ns(r['timer_p99_ns'])} / {_ns(r['timer_p999_ns'])} | | | |"
    )
    print(
        f"| signals fired (on_batch / micro / on_tick) | {r['batch_signals']:,.0f} / "
        f"{r['micro_signals']:,.0f} / {r['tick_signals']:,.0f} | | | |"
    )
    print(
        f"| to_signals() for all of them | {r['to_signals_s'] * 1e3:.1f} ms "
        f"({r['to_signals_us_per_signal']:.2f} us/signal) | | | |"
    )
    if replay:
        print(
            f"| minute-file replay, on_tick ({replay['bars']:,.0f} bars) | "
            f"{replay['tick_tps'] / 1e6:.3f} M ticks/s | | | |"
        )
        print(f"| minute-file replay, on_batch | {replay['batch_tps'] / 1e6:.2f} M ticks/s | | | |")
        if replay["readonly"]:
            print(
                f"| minute-file replay, first on_batch on read-only (pandas) arrays, "
                f"not in the row above | "
                f"{replay['warm_s'] * 1e3:,.0f} ms | | | |"
            )
        print(
            f"| minute-file replay, signals (on_batch / on_tick) | "
            f"{replay['batch_signals']:,.0f} / {replay['tick_signals']:,.0f} | | | |"
        )
    else:
        print(f"| minute-file replay | missing: {MINUTE_FILE} not found | | | |")
    if isinstance(book, str):
        print(f"| order book updates/s | {book} | | | |")
    else:
        print(
            f"| order book `BookRegistry.apply`, {book['messages']:,.0f} messages | "
            f"{book['updates_per_s']:,.0f} updates/s | | | |"
        )
        print(
            f"| order book vs naive dict books (sorted() / max()) | "
            f"{book['ratio_vs_sorted']:.2f}x / {book['ratio_vs_max']:.2f}x | | | |"
        )
    if prefix < n:
        print()
        print(
            f"talipp ran on the first {prefix:,} of {n:,} ticks (--talipp-ticks), the full stream "
            f"would take ~{n / r['talipp_tps']:.0f} s per pass; the headline ratio times on_tick "
            f"on that same prefix."
        )


def _print_agreement(rows: list[Agreement]) -> None:
    print("Same numbers? Engine (ema_seed='sma') vs talipp and TA-Lib on every tick:")
    print()
    print(
        "| symbol | ticks | median price | NaN where talipp None | EMA max abs diff | "
        "sample std max abs diff | talipp std (ddof=0) vs ours x sqrt(59/60) | "
        "TA-Lib EMA | TA-Lib STDDEV x sqrt(60/59) |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for a in rows:
        print(
            f"| {a.symbol} | {a.ticks:,} | {a.price_scale:,.2f} | "
            f"{'yes' if a.defined_same else 'NO'} | {a.ema_diff:.1e} | {a.std_diff:.1e} | "
            f"{a.pop_std_diff:.1e} | {a.talib_ema_diff:.1e} | {a.talib_std_diff:.1e} |"
        )


def _ns(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value / 1e3:.2f} us" if value >= 1_000 else f"{value:.0f} ns"


# --- helpers


@contextmanager
def _no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter_ns()
    value = fn()
    return (time.perf_counter_ns() - t0) / 1e9, value


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (steal included), from /proc."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
