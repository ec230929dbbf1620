"""A test worker's heap, kept out of the cyclic garbage collector's way (a pytest plugin).

A worker ends up holding every library the suite touches: litellm and the openai
client (~2,400 modules between them), Prefect, pandas, numba. That is over a
million objects, and CPython's full (generation-2) collection walks all of them:
~0.5-1 s each, about every five seconds of API tests. Those objects live as long
as the worker, so after collection the worker imports the heavy libraries once,
collects, and freezes the result (`gc.freeze`): full collections then walk only
what tests make, and they come less often. Over the API modules: 15-17 s of full
collections per worker before, ~5 s after. The realtime GC policy
(realtime/gc_policy.py) unfreezes when it stops: the tests that apply one
freeze again when done (`freeze_again`).
"""

from __future__ import annotations

import gc
import importlib

import pytest

HEAVY = ("litellm", "prefect", "prefect.client.orchestration", "pandas", "numba", "api.app")
"""What most of a worker's tests import anyway; importing it before the freeze keeps it
out of every later full collection."""


FULL_EVERY = 100
"""Generation-1 collections between full ones (CPython: 10). With the freeze alone a full
collection came every ~2 s of API tests (the 25 % growth rule counts only unfrozen
objects); at 100, ~4x fewer. Peak RSS of the two workers over the whole suite: 1.2 and
2.0 GB."""


def freeze_heap() -> None:
    for name in HEAVY:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, FULL_EVERY)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        freeze_heap()


def freeze_again() -> None:
    """After a GC policy restored CPython's defaults (its `gc.unfreeze()`): a test that
    applies one calls this when done. Not an autouse check: `gc.get_freeze_count()` walks
    the frozen list, ~0.1 s per call here."""
    gc.collect()
    gc.freeze()
