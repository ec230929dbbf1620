"""A Prefect database at its migration head, built once per test run and copied where needed.

A Prefect server on an empty home spends ~5 s of CPU (more on a busy machine)
migrating its SQLite database and registering its block types before it
answers; on a home that already holds them it starts in ~3 s. Most tests that
start a server do not test that first start, so they get a copy of a database
one real server built and left behind. The tests that are about a fresh home
(tests/test_prefect_startup.py, the whole-stack load test) do not use it.

The template is built by whichever xdist worker asks first, under a file lock
in the run's shared temporary directory; the others wait and copy it. It is
keyed by Prefect's version, so a run never copies a database an older Prefect
made.
"""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

import prefect

from services.prefect_server import LocalPrefectServer

DATABASE = "prefect.db"


def build_template(root: Path) -> Path:
    """The template database under `root` (shared by the run's workers), built if missing."""
    where = root / f"prefect-template-{prefect.__version__}"
    done = where / DATABASE
    root.mkdir(parents=True, exist_ok=True)
    with (root / "prefect-template.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            home = where / "home"
            with LocalPrefectServer(home, startup_timeout_s=180, keep_log=False):
                pass  # started (migrated, blocks registered) and stopped (WAL checkpointed)
            staged = where / f"{DATABASE}.partial"
            shutil.copyfile(home / DATABASE, staged)
            staged.rename(done)  # readers never see half a file
            shutil.rmtree(home, ignore_errors=True)
    return done


def seed_home(home: Path, template: Path, name: str = DATABASE) -> Path:
    """Put a copy of the template in `home` as the database a server there would open."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / name
    shutil.copyfile(template, target)
    return home
