"""Files a test run builds once and its xdist workers share: whichever worker asks first
builds, under a file lock in the run's temporary directory; the others wait and reuse."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest


def run_dir(factory: pytest.TempPathFactory) -> Path:
    """The run's temporary directory, the same for every worker (a worker's own is below it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(path: Path, build: Callable[[Path], None]) -> Path:
    """`path`, made by `build(staged)` unless it exists; `staged` is renamed into place,
    so no worker ever reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f"{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            staged = path.with_name(f"{path.name}.partial")
            build(staged)
            staged.rename(path)
    return path
