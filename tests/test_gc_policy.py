"""GCPolicy: no allocator-triggered full collections; deliberate ones still reclaim cycles."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from realtime.gc_policy import NEVER, GCPolicy
from tests.worker_heap import freeze_again


@pytest.fixture
def policy() -> Iterator[GCPolicy]:
    saved = gc.get_threshold()
    gc.unfreeze()  # from CPython's defaults: the worker's own freeze (tests/worker_heap.py)
    p = GCPolicy(full_every_s=60)  # would make "it froze something" true before apply()
    try:
        yield p
    finally:
        p.restore()
        gc.set_threshold(*saved)
        freeze_again()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector can free it


def test_apply_freezes_start_up_objects_and_stops_automatic_full_collections(
    policy: GCPolicy,
) -> None:
    policy.apply()
    assert gc.get_threshold()[2] == NEVER
    assert gc.get_freeze_count() > 0
    policy.restore()
    assert gc.get_threshold()[2] != NEVER
    assert gc.get_freeze_count() == 0


def test_a_policy_made_while_another_is_applied_restores_a_real_threshold(
    policy: GCPolicy,
) -> None:
    """Two apps in one process (a test worker): the second must not save NEVER."""
    policy.apply()
    second = GCPolicy(full_every_s=60)
    second.apply()
    second.restore()
    assert gc.get_threshold()[2] != NEVER


def test_a_deliberate_full_collection_still_frees_cycles(policy: GCPolicy) -> None:
    policy.apply()
    node = _Node()
    alive = weakref.ref(node)
    del node
    gc.collect(0)
    gc.collect(1)  # the young generations alone may not reach it once it aged
    policy.collect_now()
    assert alive() is None
    assert policy.full_collections == 1
    assert gc.get_freeze_count() > 0  # survivors frozen again


def test_the_full_collection_waits_for_the_next_frame(policy: GCPolicy) -> None:
    async def scenario() -> None:
        frame = asyncio.Event()

        async def no_wait(_seconds: float) -> None:
            await asyncio.sleep(0)

        task = asyncio.create_task(policy.run(frame.wait, no_wait))
        for _ in range(5):
            await asyncio.sleep(0)
        assert policy.full_collections == 0  # due, but no frame has gone out yet
        frame.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert policy.full_collections >= 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
