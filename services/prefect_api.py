"""Which Prefect API a process's flow runs go to, and pointing Prefect's client at it.

In order, the first that applies:

1. **Configured**: PREFECT_API_URL, ours (`Settings.prefect_api_url`) or
   Prefect's own (its profile, or set in code by a test harness).
2. **The stack's**: the server `aitrader up` recorded in `STACK_FILE`
   (`publish_stack` once it is healthy, `withdraw_stack` on stop), if its pid
   is alive and it answers `/api/health`. A stale record is ignored, so a
   crashed `up` never strands a command. This is how a command run in another
   terminal lands its flow runs in `up`'s UI.
3. **None**: `use_prefect_api` then starts a private server for the block
   (`LocalPrefectServer(ephemeral=True)` on Prefect's home, the role Prefect's
   ephemeral mode played, but started under the home's start lock, bounded by
   PREFECT_STARTUP_TIMEOUT_S and with a log to point at; see decision 0013).

Prefect's client reads its API URL from the settings context when a client is
created, so `use_prefect_api` enters `prefect.settings.temporary_settings`:
everything the flow creates inside the block, including Prefect's log and
event workers (their calls copy the context), talks to that API. Call it
outside a running event loop (around `asyncio.run`). Prefect is imported
inside the functions: it takes seconds and only flow-running commands need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from services.prefect_server import LocalPrefectServer
from services.settings import Settings

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 10.0


class ApiSource(StrEnum):
    CONFIGURED = "PREFECT_API_URL"
    STACK = "aitrader up"
    PRIVATE = "a private server"


@dataclass(frozen=True, slots=True)
class PrefectApi:
    """A Prefect API URL (`http://host:port/api`) and why this process uses it."""

    url: str
    source: ApiSource

    @property
    def ui_url(self) -> str:
        return self.url.removesuffix("/").removesuffix("/api")


class StackRecord(BaseModel):
    """What `aitrader up` writes to STACK_FILE while its Prefect server runs."""

    model_config = ConfigDict(frozen=True)

    url: str  # the server's API, http://127.0.0.1:4200/api
    pid: int  # the server process: the record is stale once it is gone
    prefect_home: str
    started_at: datetime


# --- the stack file ------------------------------------------------------------------


def publish_stack(path: Path, server: LocalPrefectServer) -> StackRecord:
    """Record a started server in `path` (atomically: a reader sees the old or the new)."""
    if server.pid is None:
        raise ValueError("publish a server once it is started")
    record = StackRecord(
        url=server.api_url,
        pid=server.pid,
        prefect_home=str(server.home),
        started_at=datetime.now(UTC),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(record.model_dump_json(indent=2))
    temporary.replace(path)
    return record


def withdraw_stack(path: Path, pid: int) -> None:
    """Remove the record of the server `pid`; another server's record is left alone."""
    record = read_stack(path)
    if record is not None and record.pid == pid:
        path.unlink(missing_ok=True)


def read_stack(path: Path) -> StackRecord | None:
    """The record in `path`, or None if there is none or it is unreadable. Not checked."""
    try:
        return StackRecord.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None


def live_stack(path: Path) -> StackRecord | None:
    """The record in `path` if its server runs and answers; None for none or a stale one."""
    record = read_stack(path)
    if record is None:
        return None
    if not _alive(record.pid):
        logger.info("prefect.stack_stale", extra={"path": str(path), "pid": record.pid})
        return None
    try:
        healthy = httpx.get(f"{record.url}/health", timeout=HEALTH_TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        logger.warning("prefect.stack_not_answering", extra={"path": str(path), "url": record.url})
        return None
    return record


# --- choosing the API ------------------------------------------------------------------


def resolve_prefect_api(settings: Settings) -> PrefectApi | None:
    """The Prefect API this process should use; None when there is none to join."""
    from prefect.settings import PREFECT_API_URL

    configured = settings.prefect_api_url or PREFECT_API_URL.value()
    if configured:
        return PrefectApi(str(configured), ApiSource.CONFIGURED)
    if (record := live_stack(settings.stack_file)) is not None:
        return PrefectApi(record.url, ApiSource.STACK)
    return None


def prefect_home(settings: Settings) -> Path:
    """The home of a Prefect server we start: PREFECT_HOME if set, else `data/prefect`, the one
    `aitrader up` uses (not Prefect's ~/.prefect: the UI would not show those runs)."""
    return settings.prefect_home.resolve()


def prefect_child_env(settings: Settings, api_url: str | None) -> dict[str, str]:
    """Prefect's variables for a child process that runs flows: the API to use, and
    Prefect's own ephemeral start-up timeout raised to ours in case it has none."""
    env = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(_whole(settings))}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@contextlib.contextmanager
def use_prefect_api(
    settings: Settings, notify: Callable[[str], None] | None = None
) -> Iterator[PrefectApi]:
    """Within the block, Prefect's client in this process talks to the resolved API, or to a
    private server started for the block (stopped at its end, after Prefect's log and event
    workers have sent what they hold). `notify` gets the human-readable progress lines."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    say = notify or logger.info
    api = resolve_prefect_api(settings)
    with contextlib.ExitStack() as stack:
        if api is None:
            home = prefect_home(settings)
            say(f"no Prefect server is configured or running: starting one on {home} ...")
            server = LocalPrefectServer(
                home,
                ephemeral=True,
                startup_timeout_s=settings.prefect_startup_timeout_s,
                keep_log=False,
                notify=say,
            )
            stack.enter_context(server)
            stack.callback(_drain_prefect_workers)  # runs before the server stops
            api = PrefectApi(server.api_url, ApiSource.PRIVATE)
        elif api.source is ApiSource.STACK:
            say(f"flow runs go to the Prefect server of `aitrader up`: {api.ui_url}")
        stack.enter_context(
            temporary_settings(
                updates={
                    PREFECT_API_URL: api.url,
                    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: _whole(settings),
                }
            )
        )
        yield api


class SharedPrefectApi:
    """The one Prefect API all flow-running children of this process use (the realtime
    server's job workers), so they never each start and migrate a server of their own.

    Resolved on the first `child_env`: PREFECT_API_URL, else `aitrader up`'s server (checked
    again before each child: if it went away, we start our own), else a `LocalPrefectServer`
    on Prefect's home, started then (once, however many children ask at the same time) and
    restarted if it died. `aclose` stops the server if we started it; call it after the
    children have ended. With `publish`, a server we start is recorded in STACK_FILE, so
    commands run beside this process join it.
    """

    def __init__(
        self, settings: Settings, *, ephemeral: bool = False, publish: bool = False
    ) -> None:
        self.settings = settings
        self.server: LocalPrefectServer | None = None
        self._ephemeral = ephemeral
        self._publish = publish
        self._api: PrefectApi | None = None
        self._lock = asyncio.Lock()

    async def child_env(self) -> dict[str, str]:
        """The Prefect variables for the next child; `PrefectServerError` if no server came up."""
        async with self._lock:
            if not await asyncio.to_thread(self._still_there):
                self._api = await self._resolve_or_start()
            assert self._api is not None
            return prefect_child_env(self.settings, self._api.url)

    async def aclose(self) -> None:
        async with self._lock:
            server, self.server, self._api = self.server, None, None
            if server is not None and server.pid is not None and self._publish:
                withdraw_stack(self.settings.stack_file, server.pid)
            if server is not None:
                await server.astop()

    def _still_there(self) -> bool:
        if self._api is None:
            return False
        if self._api.source is ApiSource.STACK:
            record = live_stack(self.settings.stack_file)
            return record is not None and record.url == self._api.url
        return self.server is None or self.server.poll() is None

    async def _resolve_or_start(self) -> PrefectApi:
        if self.server is None:
            api = await asyncio.to_thread(resolve_prefect_api, self.settings)
            if api is not None:
                logger.info("prefect.shared_api", extra={"url": api.url, "source": str(api.source)})
                return api
            self.server = LocalPrefectServer(
                await asyncio.to_thread(prefect_home, self.settings),
                ephemeral=self._ephemeral,
                startup_timeout_s=self.settings.prefect_startup_timeout_s,
            )
        await self.server.astart()  # also restarts one that died
        if self._publish:
            publish_stack(self.settings.stack_file, self.server)
        return PrefectApi(self.server.api_url, ApiSource.PRIVATE)


def _drain_prefect_workers() -> None:
    """Let Prefect's background workers send queued logs and events while the server is up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=DRAIN_TIMEOUT_S)
    EventsWorker.drain_all(timeout=DRAIN_TIMEOUT_S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _whole(settings: Settings) -> int:
    return math.ceil(settings.prefect_startup_timeout_s)
