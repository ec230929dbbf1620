"""The soak's verdict: what one sample holds, the bounds, and the checks against them.

Pure: no processes, no clock, no I/O. `bench/soak.py` fills `Sample`s and the run's
`Totals`, `judge` turns them into `Check`s, and the tables are rendered here so the
README and the run print the same thing. tests/test_soak_bench.py feeds it synthetic
series (flat passes, growing fails).

A growth check compares the first steady sample (the first after warm-up) with the last,
as the issue asks: a single late spike fails it too, which is intended (a soak's last
sample is its state when it ends). A trend compares the median of the last third of the
steady per-interval figures with the median of the first third, so one slow interval
does not make a trend but a steady climb does.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

TREND_MIN_SAMPLES = 6  # fewer steady samples: no trend is judged (said in the check)


@dataclass(frozen=True)
class Bounds:
    """What a soak may do and still pass. The module docstring of soak.py states them."""

    rss_growth_mb: float = 30.0  # a process may grow by max(this, rss_growth_frac x first)
    rss_growth_frac: float = 0.15
    stream_lag_p99_s: float = 0.5  # each replica, over the steady window's scrapes
    stream_lag_trend_s: float = 0.1  # last third's median p99 - first third's, at most
    tick_p99_s: float = 1.0  # tick-to-client, SSE and WS each, pooled over the steady window
    tick_trend_s: float = 0.25  # last third's median interval p99 - first third's, at most
    trend_frac: float = 0.5  # ... or this fraction of the first third's, whichever is larger


@dataclass
class Sample:
    """One sampling interval. Counters marked cumulative count from the start of the run."""

    t_s: float  # end of the interval, seconds since the steady window began (< 0: warm-up)
    phase: str  # "warmup" | "steady"
    interval_s: float
    rss_mb: dict[str, float] = field(default_factory=dict)  # judged processes, by label
    cpu_pct: dict[str, float] = field(default_factory=dict)  # of one core, over the interval
    children_rss_mb: dict[str, float] = field(default_factory=dict)  # replica -> sum of jobs'
    children: dict[str, int] = field(default_factory=dict)  # replica -> how many
    stream_lag_p99_s: dict[str, float] = field(default_factory=dict)  # replica -> scrapes'
    stream_lag_max_s: dict[str, float] = field(default_factory=dict)
    tick_p50_s: dict[str, float] = field(default_factory=dict)  # "sse" | "ws"
    tick_p99_s: dict[str, float] = field(default_factory=dict)
    tick_max_s: dict[str, float] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)  # "sse" | "ws", in the interval
    connected: dict[str, int] = field(default_factory=dict)  # "sse" | "ws", at the end
    silent: int = 0  # connected streams that got no price event in the interval
    client_loop_lag_p99_s: float = math.nan  # the client processes' own lateness
    disconnects: int = 0  # cumulative: streams that ended or failed once connected
    connect_failures: int = 0  # cumulative
    http_5xx: int = 0  # cumulative, as the drivers saw them
    server_5xx: int = 0  # cumulative, from the processes' /metrics
    failed_requests: int = 0  # cumulative: no answer after retries, or a non-2xx answer
    chat_ok: int = 0  # cumulative 2xx chat turns
    chat_p99_s: float = math.nan  # chat turns answered in the interval
    jobs: dict[str, int] = field(default_factory=dict)  # status -> how many, now
    ws_dropped: int = 0  # cumulative, WS messages dropped for slow clients (both replicas)
    unreadable: int = 0  # cumulative, market messages a replica could not read
    redis_used_mb: float = math.nan  # Redis's own count of its data (INFO memory)

    def flat(self) -> dict[str, Any]:
        """One CSV row: dicts become `name.key` columns."""
        row: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if isinstance(value, dict):
                row.update({f"{name}.{key}": v for key, v in value.items()})
            else:
                row[name] = value
        return row


@dataclass
class Totals:
    """The run as a whole, beyond the samples."""

    tick_p99_s: dict[str, float] = field(default_factory=dict)  # pooled over the steady window
    stream_lag_p99_s: dict[str, float] = field(default_factory=dict)  # pooled, per replica
    jobs: dict[int, str] = field(default_factory=dict)  # job id -> final status
    job_errors: dict[int, str] = field(default_factory=dict)  # job id -> its error, if any
    dead: list[str] = field(default_factory=list)  # processes that exited during the run
    first_errors: list[str] = field(default_factory=list)  # a few lines, for the reason


class LagHistogram:
    """Lags pooled over a window in 1 ms bins up to 20 s (later ones in the last bin):
    a 30-minute soak's millions of events in constant memory; quantiles read the bin's
    upper edge, so they never understate."""

    BIN_S = 0.001
    BINS = 20_000

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS, np.int64)

    def add(self, lags_s: np.ndarray) -> None:
        if lags_s.size:
            bins = np.clip((lags_s / self.BIN_S).astype(np.int64), 0, self.BINS - 1)
            self.counts += np.bincount(bins, minlength=self.BINS)

    def quantile(self, q: float) -> float:
        total = int(self.counts.sum())
        if total == 0:
            return math.nan
        index = int(np.searchsorted(np.cumsum(self.counts), math.ceil(q * total)))
        return (index + 1) * self.BIN_S


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    bound: str
    ok: bool
    reason: str = ""  # one line, when not ok


def judge(samples: Sequence[Sample], totals: Totals, bounds: Bounds) -> list[Check]:
    """Every check of the run, in the order they are printed; failures carry a reason."""
    steady = [s for s in samples if s.phase == "steady"]
    if len(steady) < 2:
        return [Check("steady samples", str(len(steady)), ">= 2", False, "too few samples")]
    checks: list[Check] = []
    for label in steady[0].rss_mb:
        series = [s.rss_mb.get(label, math.nan) for s in steady]
        checks.append(rss_growth(label, series, bounds))
    for replica, p99 in sorted(totals.stream_lag_p99_s.items()):
        checks.append(at_most(f"stream lag p99, {replica}", p99, bounds.stream_lag_p99_s))
        series = [s.stream_lag_p99_s.get(replica, math.nan) for s in steady]
        checks.append(
            trend(f"stream lag trend, {replica}", series, bounds.stream_lag_trend_s, bounds)
        )
    for kind, p99 in sorted(totals.tick_p99_s.items()):
        checks.append(at_most(f"tick-to-client p99, {kind}", p99, bounds.tick_p99_s))
        series = [s.tick_p99_s.get(kind, math.nan) for s in steady]
        name = f"tick-to-client trend, {kind}"
        checks.append(trend(name, series, bounds.tick_trend_s, bounds))
    last = samples[-1]
    checks += [
        zero("5xx answers (drivers)", last.http_5xx),
        zero("5xx answers (server /metrics)", last.server_5xx),
        zero("failed requests", last.failed_requests),
        zero("client disconnects", last.disconnects),
        zero("client connect failures", last.connect_failures),
        zero("unreadable market messages", last.unreadable),
        zero("processes that died", len(totals.dead), "; ".join(totals.dead)),
        jobs_completed(totals),
    ]
    return checks


def rss_growth(label: str, series: Sequence[float], bounds: Bounds) -> Check:
    """First steady sample to last: at most max(rss_growth_mb, rss_growth_frac x first)."""
    first, last = series[0], series[-1]
    allowed = max(bounds.rss_growth_mb, bounds.rss_growth_frac * first)
    grown = last - first
    value = f"{first:.0f} -> {last:.0f} MB ({grown:+.1f} MB)"
    bound = f"<= +{allowed:.0f} MB"
    if math.isnan(grown):
        return Check(f"RSS {label}", value, bound, False, f"RSS of {label} not measured")
    ok = grown <= allowed
    reason = "" if ok else f"RSS of {label} grew {grown:+.1f} MB ({first:.0f} -> {last:.0f} MB)"
    return Check(f"RSS {label}", value, bound, ok, reason + ("" if ok else f", over {bound}"))


def trend(name: str, series: Sequence[float], abs_tol: float, bounds: Bounds) -> Check:
    """Rising if the last third's median exceeds the first third's by more than
    max(abs_tol, trend_frac x first third's median). NaN (nothing measured) is skipped."""
    values = [v for v in series if not math.isnan(v)]
    if len(values) < TREND_MIN_SAMPLES:
        return Check(name, f"{len(values)} samples", f">= {TREND_MIN_SAMPLES} to judge", True)
    third = len(values) // 3
    head = statistics.median(values[:third])
    tail = statistics.median(values[-third:])
    allowed = max(abs_tol, bounds.trend_frac * head)
    value = f"{_ms(head)} -> {_ms(tail)}"
    bound = f"<= +{_ms(allowed)}"
    ok = tail - head <= allowed
    reason = "" if ok else f"{name} rising: median p99 {value}, over {bound}"
    return Check(name, value, bound, ok, reason)


def at_most(name: str, value: float, bound: float) -> Check:
    ok = not math.isnan(value) and value <= bound
    reason = "" if ok else f"{name} {_ms(value)} over {_ms(bound)}"
    return Check(name, _ms(value), f"<= {_ms(bound)}", ok, reason)


def zero(name: str, count: int, detail: str = "") -> Check:
    reason = "" if count == 0 else f"{count} {name}" + (f": {detail}" if detail else "")
    return Check(name, str(count), "0", count == 0, reason)


def jobs_completed(totals: Totals) -> Check:
    bad = {i: s for i, s in totals.jobs.items() if s != "completed"}
    value = f"{len(totals.jobs) - len(bad)}/{len(totals.jobs)} completed"
    if not totals.jobs:
        return Check("council jobs", value, "all completed", False, "no council job ran")
    if not bad:
        return Check("council jobs", value, "all completed", True)
    first = min(bad)
    cause = totals.job_errors.get(first, "")
    reason = f"job {first} ended {bad[first]}" + (f": {cause[:200]}" if cause else "")
    return Check("council jobs", value, "all completed", False, reason)


def failure_line(checks: Sequence[Check]) -> str | None:
    """The one-line reason of the first failed check (and how many more failed), or None."""
    failed = [c for c in checks if not c.ok]
    if not failed:
        return None
    more = f" (and {len(failed) - 1} more failed checks)" if len(failed) > 1 else ""
    return f"FAIL: {failed[0].reason}{more}"


# --- tables (Markdown, pasteable into bench/README.md) -----------------------------------


def checks_table(checks: Sequence[Check]) -> str:
    lines = ["| check | value | bound | verdict |", "|---|---:|---:|---|"]
    for c in checks:
        lines.append(f"| {c.name} | {c.value} | {c.bound} | {'ok' if c.ok else '**FAIL**'} |")
    return "\n".join(lines)


def process_table(samples: Sequence[Sample]) -> str:
    """Per judged process: RSS at the first and last steady sample, peak, mean CPU."""
    steady = [s for s in samples if s.phase == "steady"]
    if not steady:
        return "(no steady samples)"
    lines = [
        "| process | RSS first steady | RSS last | growth | RSS peak | CPU mean |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label in steady[0].rss_mb:
        rss = [s.rss_mb.get(label, math.nan) for s in steady]
        cpu = [s.cpu_pct.get(label, math.nan) for s in steady]
        cpu = [c for c in cpu if not math.isnan(c)]
        lines.append(
            f"| {label} | {rss[0]:.0f} MB | {rss[-1]:.0f} MB | {rss[-1] - rss[0]:+.1f} MB "
            f"| {max(rss):.0f} MB | {statistics.fmean(cpu) if cpu else math.nan:.0f} % |"
        )
    for replica in steady[0].children_rss_mb:
        peak = max(s.children_rss_mb.get(replica, 0.0) for s in steady)
        most = max(s.children.get(replica, 0) for s in steady)
        lines.append(
            f"| {replica}'s children (jobs, Prefect server; summed) | - | - | - "
            f"| {peak:.0f} MB ({most} process{'' if most == 1 else 'es'}) | - |"
        )
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"
