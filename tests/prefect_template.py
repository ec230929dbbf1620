"""A Prefect database at its migration head, built once per test run and copied where needed.

A Prefect server on an empty home spends ~5 s of CPU (more on a busy machine)
migrating its SQLite database and registering its block types before it
answers; on a home that already holds them it starts in ~3 s. Most tests that
start a server do not test that first start, so they get a copy of a database
one real server built and left behind. The tests that are about a fresh home
(tests/test_prefect_startup.py, the whole-stack load test) do not use it.

The template is built once per run (tests/run_cache.py) and keyed by Prefect's
version, so a run never copies a database an older Prefect made.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import prefect

from services.prefect_server import LocalPrefectServer
from tests.run_cache import built_once

DATABASE = "prefect.db"


def build_template(root: Path) -> Path:
    """The template database under `root` (shared by the run's workers), built if missing."""

    def build(staged: Path) -> None:
        home = root / f"prefect-template-home-{prefect.__version__}"
        with LocalPrefectServer(home, startup_timeout_s=180, keep_log=False):
            pass  # started (migrated, blocks registered) and stopped (WAL checkpointed)
        shutil.copyfile(home / DATABASE, staged)
        shutil.rmtree(home, ignore_errors=True)

    return built_once(root / f"prefect-template-{prefect.__version__}.db", build)


def seed_home(home: Path, template: Path, name: str = DATABASE) -> Path:
    """Put a copy of the template in `home` as the database a server there would open."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / name)
    return home
