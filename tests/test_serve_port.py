"""`aitrader serve` on a port that is taken refuses at once, in one line, before start-up.

The report: the banner printed, the app and its runtime started, and uvicorn
failed on the bind 25 s later. The command runs here as a user runs it, in a
process of its own, against a port this test holds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.ports import PortUnavailableError, bind_problem, check_can_listen
from tests.conftest import REPO


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on 127.0.0.1 with a listener on it: another server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_serve_on_a_taken_port_fails_in_one_line_before_starting_anything(
    held_port: int, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/never-opened.db"}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(held_port)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - began
    assert done.returncode != 0
    assert done.stdout == ""  # no banner
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: port {held_port} on 127.0.0.1 is in use (another aitrader serve?): "
        "stop it or choose another --port"
    ]
    assert elapsed < 3.0  # ~0.4 s: the interpreter and the CLI's table, nothing else
    assert not (tmp_path / "never-opened.db").exists()  # not even the database was opened


def test_a_free_port_passes_and_stays_free(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    check_can_listen("127.0.0.1", port, holder="x")
    assert bind_problem("127.0.0.1", port) is None  # the probe let go of it


def test_an_address_this_machine_does_not_have_is_refused_with_the_reason() -> None:
    with pytest.raises(PortUnavailableError, match=r"cannot listen on 192\.0\.2\.1:8000: "):
        check_can_listen("192.0.2.1", 8000, holder="x")  # TEST-NET-1, never local


@pytest.mark.parametrize(
    ("role", "redis", "refusal"),
    [
        ("all", "", "--workers: each worker would run its own market data source"),
        ("api", "", "REALTIME_ROLE=api needs REDIS_URL"),
    ],
)
def test_serve_refuses_a_topology_that_cannot_work_in_one_line(
    tmp_path: Path, role: str, redis: str, refusal: str
) -> None:
    """Several workers of the embedded process would simulate several markets; a replica
    without Redis would follow nothing. Both are refused before anything serves."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite"}
    env |= {"REALTIME_ROLE": role, "REDIS_URL": redis}
    upgrade = [sys.executable, "-m", "cli.main", "db", "upgrade"]
    plain = env | {"REALTIME_ROLE": "all"}
    subprocess.run(upgrade, cwd=REPO, env=plain, check=True, capture_output=True, timeout=120)
    workers = ["--workers", "2"] if role == "all" else []
    port = ["--port", str(_free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", *port, *workers],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.strip().splitlines() if line.startswith("error")]
    assert len(lines) == 1, done.stderr
    assert refusal in lines[0]
    assert "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
