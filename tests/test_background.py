"""BackgroundTask: one start at a time, stop leaves nothing running and hides no error."""

from __future__ import annotations

import asyncio

import pytest

from realtime.background import BackgroundTask


async def _forever() -> None:
    await asyncio.Event().wait()


async def _fail() -> None:
    raise ValueError("loop broke")


def test_start_is_refused_while_running_and_allowed_after_stop() -> None:
    async def scenario() -> None:
        task = BackgroundTask("t")
        task.start(_forever())
        with pytest.raises(RuntimeError, match="already running"):
            task.start(_forever())
        await task.stop()
        assert not task.running
        task.start(_forever())  # a stopped (or finished) task may run again
        await task.stop()
        await task.stop()  # twice is harmless

    asyncio.run(scenario())


def test_stop_re_raises_the_error_that_ended_the_loop() -> None:
    async def scenario() -> None:
        task = BackgroundTask("t")
        task.start(_fail())
        await asyncio.sleep(0)
        assert not task.running
        with pytest.raises(ValueError, match="loop broke"):
            await task.stop()

    asyncio.run(scenario())


def test_cancelling_the_caller_of_stop_is_not_swallowed() -> None:
    async def scenario() -> None:
        task = BackgroundTask("t")

        async def stubborn() -> None:  # takes a while to finish after being cancelled
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(0.05)

        task.start(stubborn())
        await asyncio.sleep(0)
        stopper = asyncio.create_task(task.stop())
        await asyncio.sleep(0.01)
        stopper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopper

    asyncio.run(scenario())
