"""The scale-out topology on loopback: one `ingest` process and `api` replicas, each a real
`aitrader serve` in its own process, sharing a database and a Redis (no Docker).

Used by tests/test_replicas.py and by bench/soak.py and bench/fanout.py. Every
process logs to its own file under the work directory; `stop_all` (and leaving
the `replica_stack` block) terminates them, then kills what is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.live_server import free_port

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0


@dataclass
class Served:
    """One `aitrader serve` process."""

    name: str
    role: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (uvicorn's workers too): a crash, not a stop."""
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait(timeout=10)

    def pause(self) -> None:
        _signal_group(self.process, signal.SIGSTOP)

    def resume(self) -> None:
        _signal_group(self.process, signal.SIGCONT)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class ReplicaStack:
    workdir: Path
    env: dict[str, str]
    processes: dict[str, Served] = field(default_factory=dict)

    def start(self, name: str, role: str, *, workers: int = 1, wait: bool = True) -> Served:
        port = free_port()
        log = self.workdir / f"{name}.log"
        command = [sys.executable, "-m", "cli.main", "serve", "--port", str(port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env={**self.env, "REALTIME_ROLE": role},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        served = Served(name, role, port, process, log)
        self.processes[name] = served
        if wait:
            wait_ready(served)
        return served

    def stop_all(self) -> None:
        for served in self.processes.values():
            _stop(served.process)

    @property
    def replicas(self) -> list[Served]:
        return [s for s in self.processes.values() if s.role == "api" and s.alive]


def replica_environment(
    database_url: str, redis_url: str, workdir: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PYTHONPATH": str(REPO),
            "JOBS_RUNNER": "process",
            "JOBS_LOG_DIR": str(workdir / "jobs"),
            "PAPER_STATE_DIR": str(workdir / "paper"),
            "PREFECT_HOME": str(workdir / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "SIM_INTERVAL_MS": "100",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            **(extra or {}),
        }
    )
    return env


@contextmanager
def replica_stack(
    database_url: str, redis_url: str, workdir: Path, extra: Mapping[str, str] | None = None
) -> Iterator[ReplicaStack]:
    workdir.mkdir(parents=True, exist_ok=True)
    stack = ReplicaStack(workdir, replica_environment(database_url, redis_url, workdir, extra))
    try:
        yield stack
    finally:
        stack.stop_all()


def wait_ready(served: Served, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until `/ready` answers 200 (source or follower running, database answering)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not served.alive:
            tail = served.log_text()[-3000:]
            raise RuntimeError(f"{served.name} exited with {served.process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{served.base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{served.name} was not ready within {timeout_s:.0f} s")


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGCONT, signal.SIGTERM, signal.SIGKILL):  # CONT: a paused one too
        if process.poll() is not None:
            return
        _signal_group(process, sig)
        if sig is signal.SIGCONT:
            continue
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            continue
