"""A realtime shutdown names the component that holds it up: while it is still stopping, not
only once it has stopped (a step that never ends would otherwise never be named)."""

from __future__ import annotations

import asyncio
import logging

import pytest

import realtime.runtime as runtime


def _events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.getMessage(), getattr(r, "step", ""))
        for r in caplog.records
        if r.name == runtime.logger.name
    ]


def test_a_slow_step_is_named_while_it_stops_and_again_with_its_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "SLOW_STOP_S", 0.05)
    seen_while_stopping: list[list[tuple[str, str]]] = []

    async def slow_stop() -> None:
        await asyncio.sleep(0.2)
        seen_while_stopping.append(_events(caplog))

    with caplog.at_level(logging.INFO, logger=runtime.logger.name):
        asyncio.run(runtime._timed("bus", slow_stop()))
    assert seen_while_stopping == [[("realtime.stopping_slowly: bus", "bus")]]
    assert _events(caplog) == [
        ("realtime.stopping_slowly: bus", "bus"),
        ("realtime.slow_stop", "bus"),
    ]


def test_a_quick_step_says_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "SLOW_STOP_S", 5.0)

    async def quick_stop() -> None:
        await asyncio.sleep(0)

    with caplog.at_level(logging.INFO, logger=runtime.logger.name):
        asyncio.run(runtime._timed("gc", quick_stop()))
    assert _events(caplog) == []


def test_cancelling_the_shutdown_cancels_the_step_it_waits_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "SLOW_STOP_S", 0.01)
    step_cancelled = asyncio.Event()

    async def never_stops() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            step_cancelled.set()
            raise

    async def scenario() -> None:
        stopping = asyncio.create_task(runtime._timed("source", never_stops()))
        await asyncio.sleep(0.05)
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        await asyncio.wait_for(step_cancelled.wait(), timeout=5)

    asyncio.run(scenario())
