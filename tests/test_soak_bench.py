"""bench/soak.py's verdict on synthetic series: flat passes, growing fails, a rising lag fails.

Only the pure judgement (bench/_soak_judge.py) runs here; the soak itself takes minutes
and a machine of its own."""

from __future__ import annotations

import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from _soak_judge import (  # noqa: E402
    Bounds,
    Sample,
    Totals,
    failure_line,
    judge,
    rss_growth,
    trend,
)

BOUNDS = Bounds()


def make_samples(
    rss: list[float],
    *,
    stream_lag: list[float] | None = None,
    tick: list[float] | None = None,
    warmup: int = 2,
) -> list[Sample]:
    """A warm-up of `warmup` samples at half the first RSS, then one steady sample per value."""
    n = len(rss)
    stream_lag = stream_lag or [0.01] * n
    tick = tick or [0.2] * n
    samples = [
        Sample(t_s=10.0 * i, phase="warmup", interval_s=10.0, rss_mb={"api-1": rss[0] / 2})
        for i in range(warmup)
    ]
    for i in range(n):
        samples.append(
            Sample(
                t_s=10.0 * (warmup + i),
                phase="steady",
                interval_s=10.0,
                rss_mb={"api-1": rss[i]},
                stream_lag_p99_s={"api-1": stream_lag[i]},
                tick_p99_s={"sse": tick[i]},
            )
        )
    return samples


def make_totals(samples: list[Sample], **jobs: str) -> Totals:
    steady = [s for s in samples if s.phase == "steady"]
    return Totals(
        tick_p99_s={"sse": max(s.tick_p99_s["sse"] for s in steady)},
        stream_lag_p99_s={"api-1": max(s.stream_lag_p99_s["api-1"] for s in steady)},
        jobs={int(k.removeprefix("job")): v for k, v in (jobs or {"job1": "completed"}).items()},
    )


def test_a_flat_run_passes_every_check() -> None:
    samples = make_samples([400.0, 402.0, 399.0, 401.0, 403.0, 400.0, 401.0])
    checks = judge(samples, make_totals(samples), BOUNDS)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert failure_line(checks) is None


def test_the_warm_up_does_not_count_as_growth() -> None:
    samples = make_samples([400.0] * 7)  # warm-up at 200 MB: +200 MB before steady
    assert failure_line(judge(samples, make_totals(samples), BOUNDS)) is None


def test_rss_growing_past_15_percent_fails_with_a_one_line_reason() -> None:
    samples = make_samples([400.0, 410.0, 420.0, 430.0, 440.0, 450.0, 470.0])
    line = failure_line(judge(samples, make_totals(samples), BOUNDS))
    assert line is not None
    assert line.startswith("FAIL: RSS of api-1 grew +70.0 MB")
    assert "\n" not in line


def test_a_small_process_may_grow_30_mb_a_large_one_15_percent() -> None:
    assert rss_growth("redis", [20.0, 49.0], BOUNDS).ok
    assert not rss_growth("redis", [20.0, 51.0], BOUNDS).ok
    assert rss_growth("api", [400.0, 459.0], BOUNDS).ok  # 15 % of 400 = 60 MB
    assert not rss_growth("api", [400.0, 461.0], BOUNDS).ok


def test_a_rising_stream_lag_fails_though_every_value_is_under_the_bound() -> None:
    rising = [0.01, 0.02, 0.04, 0.08, 0.12, 0.16, 0.2, 0.25, 0.3]
    samples = make_samples([400.0] * 9, stream_lag=rising)
    checks = judge(samples, make_totals(samples), BOUNDS)
    failed = [c.name for c in checks if not c.ok]
    assert failed == ["stream lag trend, api-1"]


def test_one_slow_interval_is_not_a_trend() -> None:
    spiky = [0.2, 0.2, 0.2, 0.9, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert trend("tick", spiky, BOUNDS.tick_trend_s, BOUNDS).ok


def test_a_trend_needs_six_samples_and_ignores_unmeasured_ones() -> None:
    check = trend("tick", [0.1, 0.2, math.nan, 0.9, 1.5], BOUNDS.tick_trend_s, BOUNDS)
    assert check.ok
    assert check.value == "4 samples"


def test_tick_to_client_p99_over_the_bound_fails() -> None:
    samples = make_samples([400.0] * 7, tick=[1.2] * 7)
    line = failure_line(judge(samples, make_totals(samples), BOUNDS))
    assert line == "FAIL: tick-to-client p99, sse 1200 ms over 1000 ms"


def test_any_5xx_disconnect_or_unfinished_job_fails() -> None:
    samples = make_samples([400.0] * 7)
    samples[-1].server_5xx = 1
    samples[-1].disconnects = 3
    checks = judge(samples, make_totals(samples, job1="completed", job2="failed"), BOUNDS)
    failed = {c.name for c in checks if not c.ok}
    assert failed == {"5xx answers (server /metrics)", "client disconnects", "council jobs"}
    line = failure_line(checks)
    assert line is not None
    assert line.endswith("(and 2 more failed checks)")


def test_a_process_missing_from_the_last_sample_fails() -> None:
    samples = make_samples([400.0] * 7)
    samples[-1].rss_mb = {}
    line = failure_line(judge(samples, make_totals(samples), BOUNDS))
    assert line == "FAIL: RSS of api-1 not measured"
