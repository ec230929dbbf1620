"""Signal to suggestion: the strategy engine's warm path, with and without its models.

    .venv/bin/python bench/suggestions.py                 # 500 symbols, 3 rounds of 10 s each
    .venv/bin/python bench/suggestions.py --redis redis://127.0.0.1:6379/15
    .venv/bin/python bench/suggestions.py --quick         # smoke run

The pipeline is the realtime process's own, in one event loop: ticks go into the
pattern engine (`PatternEngine.on_tick`), its signals into the `SignalSink`,
which publishes them on the bus; the `StrategyEngine` tails `signals:global`,
takes the signalling symbols' windows, asks the served models (ONNX Runtime,
one thread) and publishes each suggestion on `suggestions:global`; rows go to
a SQLite database. The models are the project's two networks (N-BEATS and the
pattern CNN, window 32) with seeded random weights, exported and registered as
a training run would.

Ticks: `--symbols` random walks, each ticking `--rate` times a second with the
event time of the wall clock, and a 1 % chance per tick of a 0.6 % jump (so
breakouts fire). Latency is the engine's own measure (`latency_ms`): from the
signal's tick (its event time) to its suggestion's publication.

The collector is handled as the realtime process handles it (realtime/gc_policy.py:
start-up objects frozen, no full collection mid-stream); `--no-gc-policy` leaves
CPython's defaults, whose full collections stall the loop 100-300 ms.

Rows, interleaved round by round in the same run: **models** (both networks
served) and **signals only** (the same engine with no model served: the
baseline, everything but inference). The ratio is models / signals only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("LOG_LEVEL", "WARNING")

from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.queries import model_registry as registry
from db.queries.signals import ensure_strategy
from realtime.gc_policy import GCPolicy
from realtime.patterns.config import PatternConfig
from realtime.patterns.engine import PatternEngine, datetime_to_ns
from realtime.patterns.sink import SignalSink
from realtime.strategy.engine import StrategyEngine
from realtime.strategy.model_set import ModelSet
from services.bus import Bus, make_bus

WINDOW = 32


def _models(directory: Path, sessions: Any) -> None:
    """Export the two networks with seeded random weights and make them active."""
    import torch

    from services.ml.export import export_onnx
    from services.ml.nets import NBeats, PatternCnn

    torch.manual_seed(0)
    for name, net, horizon in (
        ("forecaster", NBeats(WINDOW, 5), 5),
        ("pattern_classifier", PatternCnn(WINDOW), 5),
    ):
        path = directory / f"{name}.onnx"
        sha = export_onnx(net, path, window=WINDOW)
        with unit_of_work(sessions) as session:
            row = registry.register(
                session, name=name, kind=name, onnx_path=str(path), onnx_sha256=sha,
                data_hash="0" * 64, data_from=datetime(2015, 1, 1, tzinfo=UTC),
                data_to=datetime(2020, 1, 1, tzinfo=UTC),
                params={"window": WINDOW, "horizon": horizon}, metrics={"mase": 1.0},
            )  # fmt: skip
            registry.promote(session, name, row.version, metric="mase")


class Ticks:
    """Random walks with jumps, stamped with the wall clock, fed as the runtime feeds them."""

    def __init__(self, symbols: int, seed: int = 7) -> None:
        self.names = [f"S{i:04d}" for i in range(symbols)]
        self.prices = [100.0 + i % 50 for i in range(symbols)]
        self.random = random.Random(seed)

    def step(self, patterns: PatternEngine, sink: SignalSink) -> int:
        now = datetime_to_ns(datetime.now(UTC))
        fired = 0
        for i, name in enumerate(self.names):
            move = self.random.gauss(0.0, 0.0004)
            if self.random.random() < 0.01:
                move += self.random.choice((-0.006, 0.006))
            self.prices[i] = round(self.prices[i] * (1.0 + move), 2)
            size = float(self.random.choice((100, 200, 300, 500, 1000)))
            signals = patterns.on_tick(name, self.prices[i], size, now)
            if signals:
                sink.submit(signals)
                fired += len(signals)
        return fired


async def _drive(
    ticks: Ticks, patterns: PatternEngine, sink: SignalSink, seconds: float, rate: float
) -> int:
    period = 1.0 / rate
    end = time.monotonic() + seconds
    fired = 0
    while (now := time.monotonic()) < end:
        fired += ticks.step(patterns, sink)
        await asyncio.sleep(max(0.0, period - (time.monotonic() - now)))
    return fired


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _run(args: argparse.Namespace) -> dict[str, list[float]]:
    directory = Path(tempfile.mkdtemp(prefix="aitrader-bench-suggestions-"))
    engine = make_engine(f"sqlite:///{directory}/bench.db")
    upgrade(engine)
    sessions = make_session_factory(engine)
    _models(directory, sessions)
    with unit_of_work(sessions) as session:
        strategy_id = ensure_strategy(session, "pattern_engine", "pattern", {}, "bench").id
    bus: Bus = make_bus(args.redis)
    patterns = PatternEngine(PatternConfig(), capacity=max(64, 2 * args.symbols))
    sink = SignalSink(bus, sessions, strategy_id, "pattern_engine")
    latencies: list[float] = []
    models = ModelSet(sessions)
    strategy = StrategyEngine(
        bus, patterns, models, sessions, on_latency=latencies.append, timeout_s=0.05
    )
    await sink.start()
    await strategy.start()
    ticks = Ticks(args.symbols)
    served = dict(strategy.models.active)
    policy = GCPolicy(full_every_s=60.0)
    if not args.no_gc_policy:  # as the realtime process does after start-up (gc_policy.py)
        policy.apply()
    await _drive(ticks, patterns, sink, WINDOW / args.rate + 1.0, args.rate)  # fill the windows
    out: dict[str, list[float]] = {"models": [], "signals only": []}
    counts: dict[str, int] = {"models": 0, "signals only": 0}
    for _ in range(args.rounds):
        for mode in ("models", "signals only"):
            strategy.models.active = dict(served) if mode == "models" else {}
            await asyncio.sleep(0.2)  # what was in flight lands in the mode it began in
            latencies.clear()
            counts[mode] += await _drive(ticks, patterns, sink, args.seconds, args.rate)
            await asyncio.sleep(0.2)
            out[mode] += latencies
    strategy.models.active = dict(served)
    policy.restore()
    await strategy.stop()
    await sink.stop()
    await bus.close()
    engine.dispose()
    shutil.rmtree(directory, ignore_errors=True)
    out["_fired"] = [float(counts["models"]), float(counts["signals only"])]
    out["_failures"] = [float(strategy.counters["model_failures"])]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--rate", type=float, default=2.0, help="ticks per second per symbol")
    parser.add_argument("--seconds", type=float, default=10.0, help="per round and mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default=None, help="a Redis URL: the bus between them")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument(
        "--no-gc-policy",
        action="store_true",
        help="leave CPython's collector alone (the realtime process freezes start-up objects "
        "and schedules full collections): shows the 100-300 ms stalls it avoids",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.symbols, args.seconds, args.rounds = 50, 2.0, 1
    result = asyncio.run(_run(args))
    fired_models, fired_plain = result.pop("_fired")
    (failures,) = result.pop("_failures")
    base = _pct(result["signals only"], 0.99)
    print(
        f"# signal to suggestion: {args.symbols} symbols x {args.rate:g} ticks/s, "
        f"{args.rounds} rounds x {args.seconds:g} s per mode, bus "
        f"{'redis' if args.redis else 'in-process'}, GC policy "
        f"{'off' if args.no_gc_policy else 'on'}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"# signals fired: models {fired_models:.0f}, signals only {fired_plain:.0f}; "
          f"model failures {failures:.0f}")  # fmt: skip
    print("| mode | suggestions | p50 ms | p99 ms | max ms | p99 vs signals only |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, values in result.items():
        ms = [v * 1000 for v in values]
        p99 = _pct(ms, 0.99)
        ratio = p99 / (base * 1000) if base == base and base > 0 else float("nan")
        print(
            f"| {mode} | {len(ms)} | {statistics.median(ms) if ms else float('nan'):.2f} | "
            f"{p99:.2f} | {max(ms) if ms else float('nan'):.2f} | {ratio:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
