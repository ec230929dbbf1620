"""`aitrader up` as a user meets it: "is up" means the realtime server answers, and Ctrl-C
stops every process on its first signal, with nothing left unawaited.

The bug report, replayed: "is up" came ~60 s before the realtime server
listened, and stopping printed `coroutine 'Runner.astop' was never awaited`
(the deployments process had inherited an ignored SIGINT, so it was still
running when SIGTERM came, and Prefect's SIGTERM handler drops that
coroutine). Here the stack starts as a shell's background job starts it,
SIGINT ignored, on free ports and a database of its own, and is stopped with
a SIGINT, as Ctrl-C sends one, to `up` alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from cli.up import health_url
from db.engine import make_engine
from db.migrate import upgrade
from deployments.serve import WEEKLY_COUNCIL
from services.prefect_server import LocalPrefectServer
from tests.conftest import REPO

UP_WITHIN_S = 240.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ignore_sigint() -> None:
    """What `cmd &` in a non-interactive shell, or nohup, hands its child."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Output:
    """The process's merged output, read as it comes; `wait_for` a line containing text."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, text: str, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: (
                    any(text in line for line in self.lines) or self._process.poll() is not None
                ),
                timeout=timeout_s,
            ) and any(text in line for line in self.lines)

    @property
    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/stack.db"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def test_up_says_it_is_up_when_it_answers_and_one_ctrl_c_stops_it_cleanly(
    database: str, tmp_path: Path, seeded_prefect_home: Path
) -> None:
    port, prefect_port = _free_port(), _free_port()
    env = {**os.environ, "DATABASE_URL": database, "COLUMNS": "250", "LOG_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    command = [
        sys.executable, "-m", "cli.main", "up", "--port", str(port),
        "--prefect-port", str(prefect_port), "--prefect-home", str(seeded_prefect_home),
    ]  # fmt: skip
    up = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    output = _Output(up)
    try:
        assert output.wait_for("AITrader is up", UP_WITHIN_S), output.text[-3000:]
        answer = httpx.get(health_url("127.0.0.1", port), timeout=5.0)  # at once, no retry
        assert answer.status_code == 200
        assert f"realtime API: http://127.0.0.1:{port}" in output.text

        stop_began = time.monotonic()
        up.send_signal(signal.SIGINT)  # Ctrl-C reaches `up` alone: children have sessions
        code = up.wait(timeout=60)
        stopping_s = time.monotonic() - stop_began
    finally:
        if up.poll() is None:  # a failed assertion: let `up` stop its children (own sessions)
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
    text = output.text
    assert code == 0, text[-3000:]
    tail = text[-4000:]
    assert "never awaited" not in text, tail
    assert "did not stop" not in text, tail  # every child stopped on the first signal
    assert "Traceback" not in text, tail
    for name in ("realtime", "deployments"):
        assert f"{name} stopped (0)" in text, tail
    assert text.rstrip().endswith("stopped"), tail
    assert stopping_s < 30, tail  # the first signals suffice; the 15 s SIGTERM fallback never runs


def test_sigterm_stops_the_served_deployments_as_ctrl_c_does(seeded_prefect_home: Path) -> None:
    """`docker stop`, systemd, and `up` after its grace all send SIGTERM: the schedules
    pause and the process ends 0, without Prefect's unawaited `Runner.astop`."""
    home = seeded_prefect_home
    with LocalPrefectServer(home, startup_timeout_s=180, stop_grace_s=5) as server:
        env = {**os.environ, "PREFECT_HOME": str(home), **server.client_env()}
        served = subprocess.Popen(
            [sys.executable, "-m", "deployments.serve"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = _Output(served)
        council = f"{server.api_url}/deployments/name/weekly-council/{WEEKLY_COUNCIL}"
        try:
            assert _polled(council, UP_WITHIN_S, served), output.text[-3000:]
            served.send_signal(signal.SIGTERM)
            code = served.wait(timeout=30)
        finally:
            if served.poll() is None:
                served.kill()
                served.wait()
        paused = httpx.get(council, timeout=10).json()["paused"]
    text = output.text
    assert code == 0, text[-3000:]
    assert "never awaited" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert paused is True  # the runner's own shutdown ran


def _polled(url: str, timeout_s: float, process: subprocess.Popen[str]) -> bool:
    """True once the deployment at `url` has been polled for runs: the runner is running
    (registering comes earlier, before the runner's own signal handling is in place)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(url, timeout=5)
            if answer.status_code == 200 and answer.json().get("last_polled"):
                return True
        time.sleep(0.5)
    return False
