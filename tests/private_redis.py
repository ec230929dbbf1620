"""A private redis-server for outage tests: a subprocess on a free loopback port that a
test stops and restarts (like dev/CI run Redis: `--save "" --appendonly no`, so a restart
comes back empty)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time

import pytest
from redis import Redis
from redis.exceptions import RedisError


class PrivateRedis:
    """A redis-server subprocess on a free loopback port that can be stopped and restarted."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(RedisError, OSError),
                Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2) as probe,
            ):
                if probe.ping():
                    return
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"private redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._process = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
