"""One local Prefect server process: started, waited for, stopped. Nothing else.

`LocalPrefectServer` runs `python -m prefect server start --host 127.0.0.1
--port PORT` as a child in its own session, with `PREFECT_HOME` and the
database (`HOME/prefect.db` unless given) on its command line, its output in a
log file, and returns from `start` only once `/api/health` answers. `aitrader
up` runs its server this way; the realtime server starts one for the job
processes it spawns; a CLI command with no server to talk to runs a private
one (`ephemeral=True`: no UI, the services Prefect's ephemeral mode runs).

**Start-ups on one home take turns** while its database may need migrating
(`services/prefect_start_lock.py`): two processes migrating one fresh SQLite
file at once break it.

**Slow is not failed.** Both waits (for the lock, for the health check) are
bounded by `startup_timeout_s` (PREFECT_STARTUP_TIMEOUT_S), say every few
seconds that they are still waiting, and end in one `PrefectServerError`
naming the cause: the exit code and the log, or the timeout, or the lock's
holder. A child that did not come up is stopped before the error is raised.

Stopping sends SIGINT, then SIGTERM, then SIGKILL to the child's process
group, each after a grace period. POSIX only (flock, process groups). What
this module leaves out: which server a process should use (that is
`services/prefect_api.py`) and reading any setting (callers pass them).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from models.errors import AITraderError
from services.prefect_start_lock import NOTIFY_EVERY_S, POLL_S, serialised_start

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
PORT_RETRIES = 3  # a free port picked here can be taken before the child binds it


class PrefectServerError(AITraderError):
    """A local Prefect server did not come up: it exited, timed out, or could not start."""


Notify = Callable[[str], None]


def server_command(
    home: Path,
    port: int,
    *,
    python: str = sys.executable,
    database_url: str | None = None,
    ephemeral: bool = False,
) -> tuple[str, ...]:
    """The server's command line, complete as printed: `env NAME=VALUE ... python -m prefect
    server start ...`, so nothing here reads or copies this process's environment. Pure."""
    home = home.resolve()
    env = [
        "env",
        f"PREFECT_HOME={home}",
        f"PREFECT_API_URL={api_url(port)}",
        f"PREFECT_SERVER_DATABASE_CONNECTION_URL={database_url or default_database_url(home)}",
    ]
    if ephemeral:  # what Prefect's own ephemeral server sets: no UI, the ephemeral services
        env += ["PREFECT_SERVER_UI_ENABLED=false", "PREFECT__SERVER_EPHEMERAL=1"]
    return (*env, python, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port))


def api_url(port: int) -> str:
    return f"http://{HOST}:{port}/api"


def default_database_url(home: Path) -> str:
    return f"sqlite+aiosqlite:///{home.resolve() / 'prefect.db'}"


class LocalPrefectServer:
    """A Prefect server child process on 127.0.0.1, healthy between `start` and `stop`.

    `start`/`stop` are idempotent and thread-safe (a second `start` waits for the
    first); `astart`/`astop` run them off the event loop. `port=None` picks a free
    port. The log is `log_path` (default `HOME/server-PORT.log`); with
    `keep_log=False` it is deleted after a clean stop and kept when a start fails.
    """

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        ephemeral: bool = False,
        database_url: str | None = None,
        startup_timeout_s: float = 120.0,
        stop_grace_s: float = 10.0,
        log_path: Path | None = None,
        keep_log: bool = True,
        python: str = sys.executable,
        notify: Notify | None = None,
    ) -> None:
        self.home = home.resolve()
        self.ephemeral = ephemeral
        self.database_url = database_url or default_database_url(self.home)
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.keep_log = keep_log
        self._fixed_port = port
        self._port = port
        self._log_path = log_path
        self._python = python
        self._notify = notify or _log_notice
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._port is None:
            raise PrefectServerError("the Prefect server has no port until it is started")
        return self._port

    @property
    def api_url(self) -> str:
        """`http://127.0.0.1:PORT/api`: what PREFECT_API_URL of its clients should say."""
        return api_url(self.port)

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def log_path(self) -> Path:
        return self._log_path or self.home / f"server-{self.port}.log"

    @property
    def argv(self) -> tuple[str, ...]:
        return server_command(
            self.home,
            self.port,
            python=self._python,
            database_url=self.database_url,
            ephemeral=self.ephemeral,
        )

    def client_env(self) -> dict[str, str]:
        """Variables for a child process that should run its flows on this server."""
        return {"PREFECT_API_URL": self.api_url}

    def poll(self) -> int | None:
        """The child's exit code, or None while it runs (or before it was started)."""
        return self._process.poll() if self._process else None

    # --- start -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and return once it answers; `PrefectServerError` if it does not."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            self.home.mkdir(parents=True, exist_ok=True)
            try:
                with serialised_start(
                    self.home, self.database_url, self.startup_timeout_s, self._notify
                ):
                    self._spawn_until_healthy()
            except BaseException as exc:  # a failed or interrupted start leaves nothing running
                self._terminate(keep_log=True)
                if isinstance(exc, TimeoutError):  # the start lock's holder took too long
                    raise PrefectServerError(str(exc)) from None
                raise
            atexit.register(self.stop)
            logger.info("prefect_server.started", extra={"url": self.api_url, "pid": self.pid})

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    def _spawn_until_healthy(self) -> None:
        if self._fixed_port and not _port_free(self._fixed_port):
            raise PrefectServerError(
                f"port {self._fixed_port} on {HOST} is in use (another Prefect server?): "
                "stop it or choose another port"
            )
        for attempt in range(1, PORT_RETRIES + 1):
            self._port = self._fixed_port or _free_port()
            self._spawn()
            code = self._wait_until_healthy()
            if code is None:
                return
            in_use = "already in use" in _tail(self.log_path)
            if self._fixed_port or not in_use or attempt == PORT_RETRIES:
                raise PrefectServerError(
                    f"the Prefect server exited with code {code} before it answered; "
                    f"its log: {self.log_path}{_last_line(self.log_path)}"
                )

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 (our own command line)
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        logger.info(
            "prefect_server.starting",
            extra={"pid": self._process.pid, "url": self.api_url, "log": str(self.log_path)},
        )

    def _wait_until_healthy(self) -> int | None:
        """None once /api/health answers 200; the exit code if the child ended first."""
        assert self._process is not None
        began = time.monotonic()
        told = began
        with httpx.Client(timeout=5.0) as client:
            while (code := self._process.poll()) is None:
                with contextlib.suppress(httpx.HTTPError):  # not listening, or busy migrating
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return None
                now = time.monotonic()
                if now - began > self.startup_timeout_s:
                    raise PrefectServerError(
                        f"the Prefect server at {self.api_url} did not answer within "
                        f"{self.startup_timeout_s:.0f} s (PREFECT_STARTUP_TIMEOUT_S); "
                        f"its log: {self.log_path}{_last_line(self.log_path)}"
                    )
                if now - told >= NOTIFY_EVERY_S:
                    told = now
                    waited = now - began
                    self._notify(
                        f"waiting for the Prefect server at {self.api_url} ({waited:.0f} s) ..."
                    )
                time.sleep(POLL_S)
        return code

    # --- stop ------------------------------------------------------------------------

    def stop(self) -> int | None:
        """Stop the server (SIGINT, SIGTERM, SIGKILL to its group); its exit code, or None
        if it was not started."""
        with self._lock:
            atexit.unregister(self.stop)
            return self._terminate(keep_log=self.keep_log)

    async def astop(self) -> int | None:
        return await asyncio.to_thread(self.stop)

    def _terminate(self, *, keep_log: bool) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):  # gone already
                os.killpg(process.pid, sig)  # its own session: the group id is its pid
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=self.stop_grace_s)
        process.wait()
        logger.info(
            "prefect_server.stopped", extra={"pid": process.pid, "code": process.returncode}
        )
        if not keep_log:
            self.log_path.unlink(missing_ok=True)
        return process.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()


# --- small helpers -------------------------------------------------------------------


def _log_notice(message: str) -> None:
    logger.info(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _tail(path: Path, size: int = 4000) -> str:
    try:
        with path.open("rb") as log:
            log.seek(max(0, path.stat().st_size - size))
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in _tail(path).splitlines() if line.strip()]
    return f" (last line: {lines[-1]})" if lines else ""
