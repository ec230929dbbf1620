"""Prefect's own CLI works against the Prefect server `aitrader up` starts.

Prefect 3.8.8's client posts JSON nulls for optional filter bodies; fastapi >= 0.151
refuses them with 422, so `prefect deployment ls` and friends failed against our stack
while the UI worked (docs/decisions/0016). This runs the commands a user types."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.prefect_server import LocalPrefectServer

COMMANDS = [
    ["deployment", "ls"],
    ["flow-run", "ls"],
    ["work-pool", "ls"],
    ["artifact", "ls"],
]


def test_prefects_list_commands_answer_against_our_server(seeded_prefect_home: Path) -> None:
    home = seeded_prefect_home
    with LocalPrefectServer(home, startup_timeout_s=120) as server:
        env = os.environ | {"PREFECT_HOME": str(home)} | server.client_env()
        for command in COMMANDS:
            done = subprocess.run(
                [sys.executable, "-m", "prefect", *command],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            said = done.stdout + done.stderr
            assert done.returncode == 0, f"prefect {' '.join(command)}: {said[-2000:]}"
            assert "422" not in said, said[-2000:]
