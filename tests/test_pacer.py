"""ChangePacer: publish right after a change, at most once per interval, without drifting."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from realtime.pacer import ChangePacer


def test_a_slow_publish_does_not_push_later_publishes_behind_the_source() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        pacer = ChangePacer(0.1)
        lags: list[float] = []
        notified: list[float] = []

        async def source() -> None:  # changes exactly once per interval
            start = loop.time()
            for k in range(12):
                await asyncio.sleep(max(0.0, start + k * 0.1 - loop.time()))
                notified.append(loop.time())
                pacer.notify()

        async def publisher() -> None:
            while len(lags) < 10:
                await pacer.wait()
                if notified:
                    lags.append(loop.time() - notified[-1])
                    await asyncio.sleep(0.04)  # a publish that takes 40 % of the interval
                    pacer.published()

        await asyncio.gather(source(), publisher())
        return lags

    lags = asyncio.run(scenario())
    assert max(lags[2:]) < 0.03, lags  # drift would add ~40 ms per frame


def test_changes_faster_than_the_interval_are_rate_limited() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        pacer = ChangePacer(0.05)
        times: list[float] = []

        async def noisy() -> None:
            for _ in range(100):
                pacer.notify()
                await asyncio.sleep(0.003)

        async def publisher() -> None:
            while len(times) < 5:
                await pacer.wait()
                times.append(loop.time())
                pacer.published()

        await asyncio.gather(noisy(), publisher())
        return times

    times = asyncio.run(scenario())
    gaps = [b - a for a, b in pairwise(times)]
    assert min(gaps) >= 0.9 * 0.05 - 0.002, gaps  # the minimum spacing, 10 % slack


def test_a_late_publish_does_not_lock_later_ones_behind_a_periodic_source() -> None:
    """One late publish (at start-up, or a slow frame) must not fix the phase at that lag."""

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        pacer = ChangePacer(0.1)
        await pacer.wait()  # nothing announced: a timer wake, published "late"
        pacer.published()
        lags: list[float] = []
        start = loop.time() + 0.03  # the source ticks 30 ms out of phase with that publish
        for k in range(12):
            await asyncio.sleep(max(0.0, start + k * 0.1 - loop.time()))
            tick_at = loop.time()
            pacer.notify()
            await pacer.wait()
            lags.append(loop.time() - tick_at)
            pacer.published()
        return lags

    lags = asyncio.run(scenario())
    assert lags[0] > 0.05, lags  # the first tick waits for the minimum gap
    assert max(lags[-4:]) < 0.01, lags  # and then publishes follow ticks again
