"""ChangePacer: publish right after a change, rate-limited, without drift or phase lock.

The scheduling rule is the pure `next_due`, tested as arithmetic: a publisher
that follows it publishes at exactly these due times, however long each
publish takes (its duration never enters the rule).
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from realtime.pacer import ChangePacer, next_due

INTERVAL = 0.5
GAP = 0.9 * INTERVAL  # the default 10 % slack


def _dues(triggers: list[float], min_gap: float, last_due: float = float("-inf")) -> list[float]:
    out = []
    for trigger in triggers:
        last_due = next_due(trigger, last_due, min_gap)
        out.append(last_due)
    return out


def test_a_source_ticking_once_per_interval_is_published_at_each_tick() -> None:
    ticks = [k * INTERVAL for k in range(20)]
    assert _dues(ticks, GAP) == ticks  # no wait, so nothing can accumulate


def test_one_late_publish_does_not_lock_the_phase_of_later_ones() -> None:
    ticks = [0.03 + k * INTERVAL for k in range(20)]
    late_start = 0.3  # e.g. a timer wake at start-up, out of phase with the source
    dues = _dues(ticks, GAP, last_due=late_start)
    lags = [d - t for d, t in zip(dues, ticks, strict=True)]
    assert lags[0] == pytest.approx(late_start + GAP - ticks[0])
    assert all(b <= a for a, b in itertools.pairwise(lags))  # shrinking...
    assert lags[-1] == 0  # ...to none


def test_without_slack_the_first_lag_would_stay_forever() -> None:
    ticks = [0.03 + k * INTERVAL for k in range(20)]
    dues = _dues(ticks, INTERVAL, last_due=0.3)
    lags = {round(d - t, 9) for d, t in zip(dues, ticks, strict=True)}
    assert lags == {round(0.3 + INTERVAL - 0.03, 9)}  # why the slack exists


def test_changes_faster_than_the_interval_are_published_at_most_once_per_gap() -> None:
    triggers = [k * 0.003 for k in range(1000)]
    dues = sorted(set(_dues(triggers, GAP)))
    assert min(b - a for a, b in itertools.pairwise(dues)) >= GAP - 1e-9


def test_a_notice_wakes_the_waiter_without_waiting_for_the_timer() -> None:
    async def scenario() -> None:
        pacer = ChangePacer(interval_s=30)  # the timer would take 30 s
        waiter = asyncio.create_task(pacer.wait())
        await asyncio.sleep(0)
        pacer.notify()
        await asyncio.wait_for(waiter, timeout=5)

    asyncio.run(scenario())


def test_a_loop_on_the_pacer_stops_when_cancelled_just_as_a_change_arrives() -> None:
    """The hubs' loops wait on the pacer and are stopped by cancelling them. On Python 3.11,
    `asyncio.wait_for` swallowed a cancel that landed as the awaited event was set: the loop
    ran on and the server's stop hung (seen in CI). Cancel at each point of that hand-over."""

    async def scenario() -> list[int]:
        hung = []
        for yields in range(8):
            pacer = ChangePacer(interval_s=30)

            async def publish_loop(pacer: ChangePacer = pacer) -> None:
                while True:
                    await pacer.wait()
                    pacer.published()

            task = asyncio.create_task(publish_loop())
            await asyncio.sleep(0)  # the loop now waits for a change
            pacer.notify()
            for _ in range(yields):  # the change is handed over a step at a time
                await asyncio.sleep(0)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
            if not done:
                hung.append(yields)
                task.cancel()  # a second cancel ends it, so the next case starts clean
                await asyncio.wait({task}, timeout=2)
        return hung

    assert asyncio.run(scenario()) == []
