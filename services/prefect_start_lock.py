"""Prefect servers starting on one home take turns while the database may need migrating.

Every Prefect server migrates its database as it starts; two processes
migrating the same fresh SQLite file at once break it (`No such index:
'ix_deployment__worker_pool_queue_id'`). `serialised_start` takes an
exclusive `flock` on `HOME/.aitrader-start.lock` and, unless a server of the
installed Prefect version has already answered on that database (a stamp
file beside the lock, and for SQLite the file itself, say so), holds it for
the whole start: the second process waits for the first's migration, then
finds the schema current. With the stamp there the lock is let go at once
and servers start side by side. The caller writes the stamp by leaving the
block normally, i.e. once its server answered.

The lock is the kernel's: a holder that is killed frees it, so a crash never
wedges the next start. The wait is bounded, says every few seconds that it is
still waiting, and ends in a `TimeoutError` naming the holder's pid. POSIX
only. This module starts nothing; `services/prefect_server.py` does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import IO

LOCK_NAME = ".aitrader-start.lock"
NOTIFY_EVERY_S = 5.0
POLL_S = 0.25
SQLITE = "sqlite+aiosqlite:///"


@contextlib.contextmanager
def serialised_start(
    home: Path, database_url: str, timeout_s: float, notify: Callable[[str], None]
) -> Iterator[None]:
    """Start a server on `home` inside this block; see the module docstring for the turns."""
    path = home / LOCK_NAME
    stamp = home / f".aitrader-schema-{hashlib.sha256(database_url.encode()).hexdigest()[:12]}"
    with path.open("a+") as handle:
        _acquire(handle, path, timeout_s, notify)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))  # for the message of whoever waits on us
            handle.flush()
            if _migrated(stamp, database_url):
                fcntl.flock(handle, fcntl.LOCK_UN)  # nothing to migrate, nothing to race
            yield
            stamp.write_text(version("prefect"))
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle: IO[str], path: Path, timeout_s: float, notify: Callable[[str], None]) -> None:
    began = told = time.monotonic()
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        now = time.monotonic()
        holder = path.read_text().strip() or "another process"
        if now - began > timeout_s:
            raise TimeoutError(
                f"pid {holder} has been starting a Prefect server on {path.parent} for over "
                f"{timeout_s:.0f} s (PREFECT_STARTUP_TIMEOUT_S); lock: {path}"
            )
        if now - told >= NOTIFY_EVERY_S:
            told = now
            notify(
                f"waiting for pid {holder} to finish starting a Prefect server on "
                f"{path.parent} ({now - began:.0f} s) ..."
            )
        time.sleep(POLL_S)


def _migrated(stamp: Path, database_url: str) -> bool:
    """A server of this Prefect version has answered on this database: it is migrated."""
    if not stamp.exists() or stamp.read_text().strip() != version("prefect"):
        return False
    return not database_url.startswith(SQLITE) or Path(database_url[len(SQLITE) :]).exists()
