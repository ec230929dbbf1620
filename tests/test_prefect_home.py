"""One Prefect home for the project: a command with no server beside it (the demo's council)
records its flow runs where `aitrader up`'s server will look, so the UI shows them.

They used to go to Prefect's ~/.prefect while `aitrader up` served data/prefect: the demo
said its runs were in the UI, and they were not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.prefect_api import prefect_home
from services.prefect_server import LocalPrefectServer
from services.settings import Settings
from tests.conftest import REPO
from tests.prefect_template import seed_home


def test_the_home_is_data_prefect_unless_prefect_home_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    assert prefect_home(Settings()) == tmp_path / "data" / "prefect"
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "elsewhere"))
    assert prefect_home(Settings()) == tmp_path / "elsewhere"


def test_a_council_run_with_no_server_beside_it_shows_in_the_server_aitrader_up_starts(
    sample_db_url: str, tmp_path: Path, prefect_db_template: Path
) -> None:
    home = seed_home(tmp_path / "data" / "prefect", prefect_db_template)  # migrated, no runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "DATABASE_URL": sample_db_url,
        "STACK_FILE": str(tmp_path / "no-stack.json"),
        "PAPER_STATE_DIR": str(tmp_path / "paper"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(REPO),
    }
    council = subprocess.run(
        [sys.executable, "-m", "cli.main", "council", "run", "--approval", "auto"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert council.returncode == 0, council.stdout + council.stderr
    assert f"starting one on {home}" in council.stderr

    with LocalPrefectServer(home, startup_timeout_s=120) as server:  # what `aitrader up` runs
        runs = httpx.post(f"{server.api_url}/flow_runs/filter", json={}, timeout=30).json()
    assert [(r["state_type"], r["parameters"]["approval"]) for r in runs] == [("COMPLETED", "auto")]
