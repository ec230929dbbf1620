"""Benchmark: the weekly council flow's wall time against its critical path and its sequential sum.

The flow (`flows.weekly_council.weekly_council`) runs under a temporary
Prefect server (`prefect_test_harness`) on `--symbols` symbols of the shared
S&P file (default: all 482), with one model of a `--window`-token context
window (default 32 k) priced like gpt-4o-mini ($0.15 / $0.60 per million
tokens in / out), described by a models file (`LLM_MODELS_FILE`) and served by
the loopback fake OpenAI server (`tests/fake_openai.py`) through litellm's
real client. The council screens the universe, shards its research to the
window and synthesises it (tasks/council/research.py).
The fake answers every request after `--delay` seconds with the offline
analyst's own answer to the prompt, so the stages get valid, data-grounded
JSON and the council goes all the way to decisions (approval auto).

The shared file is imported once (`tasks.import_bars.import_bar_file`) into a
SQLite database; every measured run starts from a fresh copy of it, so its
`llm_calls` table is empty and the gateway's response cache answers nothing.

* Run A: the fake answers after `--delay` s (default 1.0).
* Run B: the fake answers at once: B's wall is the orchestration overhead
  (Prefect task and flow runs, artifacts, job rows, the snapshot, prompt
  building, litellm, parsing, `llm_calls` writes, and the fake's own work of
  computing the offline answers).
* critical path = sum over the stages of (the longest chain of sequential
  requests in that stage) x delay. Research shards run in parallel: their
  chain is ceil(requests / the model's concurrency); the synthesis follows
  them. Other stages: the most requests any one member sent (2 if it needed a
  repair round), or ceil(requests / concurrency) if the slots are the tighter
  bound. Normally 1 per stage: 5 x delay with a synthesis.
* sequential sum = all requests x delay (every call one after the other).
* target: wall_A <= 1.3 x critical path + overhead.

Requests are counted from the fake server's records (repairs and retries
included) and checked against the `llm_calls` rows (`attempts` per call).
Each figure is the best of `--repeat` runs; one unmeasured warm-up run
(delay 0) goes first, so imports and first-use costs are not in any run.
The Prefect harness's start-up is timed separately and is in no run.

Usage: python bench/council.py [--delay 1.0] [--symbols 482] [--window 32768] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

# Before anything imports prefect or litellm: a private Prefect home, no
# analytics, litellm's bundled cost map (no network fetch).
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="aitrader-bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `tests` (the fake OpenAI server) is not an installed package

from sqlalchemy import select  # noqa: E402

from db.engine import make_engine, make_session_factory, unit_of_work  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.queries.bar_coverage import bar_coverage  # noqa: E402
from flows.weekly_council import weekly_council  # noqa: E402
from models.enums import Timeframe  # noqa: E402
from models.ops import LLMCall  # noqa: E402
from services.llm.context import extract_context  # noqa: E402
from services.llm.offline import answer_council_prompt  # noqa: E402
from services.settings import get_settings  # noqa: E402
from tasks.import_bars import import_bar_file  # noqa: E402
from tasks.market_snapshot import build_snapshot  # noqa: E402
from tests.fake_openai import FakeOpenAI, Responder, fake_openai  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "sp500_daily_2015_2020.csv.gz"
AS_OF = date(2019, 6, 3)
MODEL = "bench"
IN_PRICE, OUT_PRICE = Decimal("0.00000015"), Decimal("0.0000006")  # gpt-4o-mini's, per token
CONCURRENCY = 8
STAGES = ("research", "synthesis", "pitch", "review", "chairman")


@dataclass(frozen=True)
class Answered:
    """One request the fake answered: when it arrived, when the answer was computed, by whom."""

    stage: str
    member: str
    received: float  # time.monotonic()
    answer_start: float  # after the fake's delay
    answer_end: float  # after computing the offline answer


class Recorder:
    """The fake's responder: the offline analyst's answer, timed and labelled by stage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[int, tuple[str, str, float, float]] = {}

    def __call__(self, body: dict[str, Any]) -> str:
        start = time.monotonic()
        stage, member = _stage_and_member(body["messages"])
        answer = answer_council_prompt("offline/analyst", body["messages"])
        with self._lock:
            self._times[id(body)] = (stage, member, start, time.monotonic())
        return answer

    def answered(self, server: FakeOpenAI) -> list[Answered]:
        """Join the server's records (arrival) with the answer times, oldest first."""
        with self._lock:
            times = dict(self._times)
        out = []
        for r in server.requests:
            stage, member, start, end = times.get(id(r.body), ("?", "?", math.nan, math.nan))
            out.append(Answered(stage, member, r.received_at, start, end))
        return out

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


def _stage_and_member(messages: list[dict[str, Any]]) -> tuple[str, str]:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            payload = extract_context(message["content"]) or {}
            return str(payload.get("stage", "?")), str(payload.get("member", "?"))
    return "?", "?"


class CallRow(NamedTuple):
    """What the run's `llm_calls` table says about one call."""

    stage: str
    member: str
    attempts: int
    status: str
    cache_hit: bool
    latency_ms: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal


@dataclass
class Run:
    delay: float
    wall: float
    started: float  # time.monotonic() just before the flow was called
    finished: float
    decisions: int
    answered: list[Answered]
    calls: list[CallRow]
    concurrency: int
    chains: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.chains = {s: self._chain(s) for s in STAGES}

    def requests(self, stage: str) -> int:
        return sum(a.stage == stage for a in self.answered)

    def _chain(self, stage: str) -> int:
        per_member = Counter(a.member for a in self.answered if a.stage == stage)
        if not per_member:
            return 0
        slots = math.ceil(self.requests(stage) / self.concurrency)
        return slots if stage == "research" else max(max(per_member.values()), slots)

    def attempts(self, stage: str) -> int:
        return sum(c.attempts for c in self.calls if c.stage == stage)

    def repaired(self, stage: str) -> int:
        return sum(c.attempts > 1 for c in self.calls if c.stage == stage)

    def gateway_latency(self, stage: str) -> float:
        """The slowest call of the stage as the gateway timed it (send, retries, parse)."""
        return max((c.latency_ms / 1000 for c in self.calls if c.stage == stage), default=0.0)

    @property
    def total_requests(self) -> int:
        return len(self.answered)

    def critical_path(self, delay: float) -> float:
        return sum(self.chains.values()) * delay

    def sequential_sum(self, delay: float) -> float:
        return self.total_requests * delay

    def timeline(self) -> list[tuple[str, float]]:
        """Where the wall went: (segment, seconds), from the flow's call to its return."""
        out = []
        cursor, gap = self.started, "flow start -> first research request"
        for stage in STAGES:
            mine = [a for a in self.answered if a.stage == stage]
            if not mine:
                continue
            first = min(a.received for a in mine)
            last = max(a.answer_end for a in mine)
            out.append((gap, first - cursor))
            out.append((f"{stage}: first request in -> last answer out", last - first))
            cursor, gap = last, f"{stage} answered -> next request"
        out.append((f"{gap.split(' -> ')[0]} -> flow returns", self.finished - cursor))
        return out

    def arrival_spread(self, stage: str) -> float:
        times = [a.received for a in self.answered if a.stage == stage]
        return max(times) - min(times) if times else 0.0

    def fake_compute(self, stage: str) -> float:
        return sum(a.answer_end - a.answer_start for a in self.answered if a.stage == stage)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delay", type=float, default=1.0, help="fake model latency, seconds")
    parser.add_argument("--symbols", type=int, default=482, help="universe size (482: all)")
    parser.add_argument("--window", type=int, default=32768, help="model's context window")
    parser.add_argument("--repeat", type=int, default=2, help="measured runs of each kind")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    args = parser.parse_args()

    print(f"load average at start: {_loadavg()}")
    with _workdir(args.workdir) as workdir:
        base = workdir / "base.db"
        t0 = time.perf_counter()
        universe = _prepare(base, args.symbols)
        print(f"import {SHARED.name} into {base.name}: {time.perf_counter() - t0:.1f} s")
        print(f"universe: {len(universe)} symbols, {universe[0]} .. {universe[-1]}; as_of {AS_OF}")
        snapshot = _snapshot_time(base, universe)
        print(f"snapshot alone (build_snapshot outside the flow, best of 3): {snapshot:.3f} s")

        from prefect.testing.utilities import prefect_test_harness

        t0 = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=60):
            harness = time.perf_counter() - t0
            print(f"Prefect test harness start: {harness:.1f} s (not part of any run)")
            recorder = Recorder()
            with fake_openai(default=Responder(recorder)) as server:
                models_file = _models_file(workdir, server, args.window)
                os.environ["LLM_MODELS_FILE"] = str(models_file)
                counter = iter(range(1_000_000))

                def one(delay: float) -> Run:
                    return _run(workdir, base, next(counter), universe, server, recorder, delay)

                cold = one(0.0)
                print(f"warm-up run (delay 0, not counted): {cold.wall:.2f} s")
                runs_b, runs_a = [], []
                for i in range(args.repeat):
                    runs_a.append(one(args.delay))
                    print(f"run A{i + 1} (delay {args.delay:g} s): {runs_a[-1].wall:.2f} s")
                    runs_b.append(one(0.0))
                    print(f"run B{i + 1} (delay 0): {runs_b[-1].wall:.2f} s")
    print(f"load average at end: {_loadavg()}")
    _report(args, harness, runs_a, runs_b)


def _report(args: argparse.Namespace, harness: float, runs_a: list[Run], runs_b: list[Run]) -> None:
    a = min(runs_a, key=lambda r: r.wall)
    b = min(runs_b, key=lambda r: r.wall)
    delay = args.delay
    critical = a.critical_path(delay)
    sequential = a.sequential_sum(delay)
    overhead = b.wall
    bound = 1.3 * critical + overhead

    print()
    print(
        f"## Council flow, {args.symbols} symbols, a {args.window // 1024} k window, "
        f"fake model latency {delay:g} s (run A)"
    )
    print()
    print(
        "| stage | requests | llm_calls rows | attempts | repaired | chain "
        "| arrival spread | slowest call (gateway) | fake's compute |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for stage in STAGES:
        rows = sum(c.stage == stage for c in a.calls)
        print(
            f"| {stage} | {a.requests(stage)} | {rows} | {a.attempts(stage)} "
            f"| {a.repaired(stage)} | {a.chains[stage]} | {a.arrival_spread(stage) * 1000:.0f} ms "
            f"| {a.gateway_latency(stage):.3f} s | {a.fake_compute(stage) * 1000:.0f} ms |"
        )
    print(
        f"| **all** | {a.total_requests} | {len(a.calls)} "
        f"| {sum(a.attempts(s) for s in STAGES)} | {sum(a.repaired(s) for s in STAGES)} "
        f"| {sum(a.chains.values())} | | | |"
    )
    others = [c for c in a.calls if c.stage not in STAGES]
    if others or any(x.stage not in STAGES for x in a.answered):
        print(f"note: calls outside the four stages: {others}")
    hits = sum(c.cache_hit for c in a.calls)
    if hits:
        print(f"note: {hits} cache hits in run A (expected 0 on a fresh database)")
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| wall A (delay {delay:g} s), best of {len(runs_a)} | {a.wall:.2f} s |")
    chain = sum(a.chains.values())
    print(f"| critical path ({chain} sequential requests x {delay:g} s) | {critical:.2f} s |")
    print(f"| sequential sum ({a.total_requests} requests x {delay:g} s) | {sequential:.2f} s |")
    print(f"| overhead = wall B (delay 0), best of {len(runs_b)} | {overhead:.2f} s |")
    print(f"| wall A / (critical path + overhead) | {a.wall / (critical + overhead):.2f} |")
    print(f"| wall A / critical path | {a.wall / critical:.2f} |")
    print(f"| wall A / sequential sum | {a.wall / sequential:.2f} |")
    print(f"| wall A - critical path (overhead seen under latency) | {a.wall - critical:.2f} s |")
    verdict = "PASS" if a.wall <= bound else "MISS"
    print(f"| target: wall A <= 1.3 x critical path + overhead = {bound:.2f} s | **{verdict}** |")
    print(f"| Prefect harness start (not in any run) | {harness:.1f} s |")
    print()
    walls_a = ", ".join(f"{r.wall:.2f}" for r in runs_a)
    walls_b = ", ".join(f"{r.wall:.2f}" for r in runs_b)
    decided = ", ".join(str(r.decisions) for r in [*runs_a, *runs_b])
    print(f"all runs: A {walls_a} s; B {walls_b} s; decisions {decided}")
    print()
    print("| tokens and dollars of run A, by `llm_calls` stage | calls | prompt | answer | USD |")
    print("|---|---:|---:|---:|---:|")
    for stage in sorted({c.stage for c in a.calls}, key=lambda s: (s not in STAGES, s)):
        mine = [c for c in a.calls if c.stage == stage]
        cost = sum((c.cost_usd for c in mine), Decimal(0))
        print(
            f"| {stage} | {len(mine)} | {sum(c.prompt_tokens for c in mine):,} "
            f"| {sum(c.completion_tokens for c in mine):,} | {cost:.4f} |"
        )
    total = sum((c.cost_usd for c in a.calls), Decimal(0))
    prompt = sum(c.prompt_tokens for c in a.calls)
    answer = sum(c.completion_tokens for c in a.calls)
    print(f"| **run** | {len(a.calls)} | {prompt:,} | {answer:,} | **{total:.4f}** |")
    print()
    print(f"| where the wall went | A (delay {delay:g} s) | B (delay 0) |")
    print("|---|---:|---:|")
    for (label, sa), (_, sb) in zip(a.timeline(), b.timeline(), strict=True):
        print(f"| {label} | {sa:.3f} s | {sb:.3f} s |")


def _run(
    workdir: Path,
    base: Path,
    n: int,
    universe: list[str],
    server: FakeOpenAI,
    recorder: Recorder,
    delay: float,
) -> Run:
    db = workdir / f"run{n}.db"
    shutil.copyfile(base, db)
    os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    get_settings.cache_clear()
    concurrency = CONCURRENCY
    server.reset(default=Responder(recorder), delay_s=delay)
    recorder.clear()

    started = time.monotonic()
    t0 = time.perf_counter()
    state = asyncio.run(_flow(universe))
    wall = time.perf_counter() - t0
    finished = time.monotonic()
    if not state.is_completed():
        raise SystemExit(f"run {n}: the flow ended {state.type}: {state.message}")
    summary = state.result()
    engine = make_engine(f"sqlite:///{db}")
    try:
        with make_session_factory(engine)() as session:
            calls = [
                CallRow(
                    c.stage,
                    c.member,
                    c.attempts,
                    str(c.status),
                    c.cache_hit,
                    c.latency_ms,
                    c.prompt_tokens,
                    c.completion_tokens,
                    c.cost_usd,
                )
                for c in session.scalars(select(LLMCall).order_by(LLMCall.id))
            ]
    finally:
        engine.dispose()
    return Run(
        delay,
        wall,
        started,
        finished,
        len(summary["decisions"]),
        recorder.answered(server),
        calls,
        concurrency,
    )


async def _flow(universe: list[str]) -> Any:
    return await weekly_council(as_of=AS_OF, universe=universe, approval="auto", return_state=True)


def _models_file(workdir: Path, server: FakeOpenAI, window: int) -> Path:
    """One model, every seat: the window asked for, gpt-4o-mini's prices, the fake's URL."""
    spec = {
        "models": [
            {
                "name": MODEL,
                "model": f"openai/bench-{window // 1024}k",
                "api_base": server.base_url,
                "input_window": window,
                "output_limit": min(4096, window // 2),
                "input_cost_per_token": str(IN_PRICE),
                "output_cost_per_token": str(OUT_PRICE),
                "concurrency": CONCURRENCY,
            }
        ],
        "roster": {"analyst": MODEL, "pm": MODEL, "chairman": MODEL},
    }
    path = workdir / "models.json"
    path.write_text(json.dumps(spec))
    return path


def _prepare(path: Path, symbols: int) -> list[str]:
    """Import the shared file once; the universe: every symbol when `symbols` reaches them
    all, else the first `symbols` with the whole history."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        sessions = make_session_factory(engine)
        with unit_of_work(sessions) as session:
            import_bar_file(session, SHARED)
        with sessions() as session:
            coverage = bar_coverage(session, None, Timeframe.D1)
        first = min(c.first for c in coverage)
        last = max(c.last for c in coverage)
        full = sorted(c.symbol for c in coverage if c.first == first and c.last == last)
        # Fold the WAL into the file, so a copy is complete. On the driver's connection: our
        # engine begins every transaction IMMEDIATE, and a checkpoint inside one is refused.
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    finally:
        engine.dispose()
    every = sorted(c.symbol for c in coverage)
    if symbols >= len(every):
        return every
    if len(full) < symbols:
        raise SystemExit(f"only {len(full)} symbols have the whole history")
    return full[:symbols]


def _snapshot_time(base: Path, universe: list[str]) -> float:
    engine = make_engine(f"sqlite:///{base}")
    when = datetime.combine(AS_OF + timedelta(days=1), dtime(0), tzinfo=UTC)  # as the flow does
    try:
        sessions = make_session_factory(engine)
        times = []
        for _ in range(4):  # the first one warms the page cache and is not counted
            with sessions() as session:
                t0 = time.perf_counter()
                build_snapshot(session, universe, when)
                times.append(time.perf_counter() - t0)
        return min(times[1:])
    finally:
        engine.dispose()


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="aitrader-bench-council-") as tmp:
        yield Path(tmp)


if __name__ == "__main__":
    main()
