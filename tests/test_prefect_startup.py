"""Which Prefect a process uses, and Prefect servers that start at once on a busy machine.

The start-up test is the bug report replayed: on one fresh PREFECT_HOME, two
processes that run a flow with no server anywhere (each starts its own, as a
CLI command does) and a shared server with two client processes
(`SharedPrefectApi`, as the realtime server's job workers use it) all start
together. Before, the second migration of the fresh database broke (`No such
index`) or Prefect's 20 s start-up timeout fired; now every run must
complete. The same start-ups with both cores kept busy are part of the
whole-stack test (tests/test_concurrent_stack.py). Nothing here asserts how
long anything took.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prefect.settings import PREFECT_API_URL, temporary_settings

from services.prefect_api import (
    ApiSource,
    SharedPrefectApi,
    StackRecord,
    read_stack,
    resolve_prefect_api,
    use_prefect_api,
    withdraw_stack,
)
from services.prefect_server import LocalPrefectServer, PrefectServerError
from services.prefect_start_lock import LOCK_NAME
from services.settings import Settings
from tests.conftest import REPO
from tests.live_server import free_port, serve_in_thread

BROKEN = ("No such index", "Timed out while attempting to connect", "Traceback")

# A process that runs one small flow the way `aitrader council run` does: through
# use_prefect_api, which joins PREFECT_API_URL if it is set and else starts its own server.
FLOW_PROCESS = textwrap.dedent(
    """
    import sys
    from prefect import flow, task
    from services.prefect_api import use_prefect_api
    from services.settings import Settings

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow(name="startup-probe")
    def probe(x: int) -> int:
        return double(x)

    name = sys.argv[1]
    with use_prefect_api(Settings(), notify=lambda line: print(name, line, flush=True)) as api:
        state = probe.with_options(flow_run_name=name)(21, return_state=True)
        ok = state.is_completed() and state.result() == 42
        print(name, api.source, api.url, state.type.value, flush=True)
    sys.exit(0 if ok else 1)
    """
)


@pytest.fixture
def no_configured_prefect() -> Iterator[None]:
    """Prefect's own PREFECT_API_URL unset here (another test's harness may have set it)."""
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


@pytest.fixture
def health_server() -> Iterator[str]:
    """A loopback server that answers Prefect's health check; yields its API URL."""
    app = FastAPI()

    @app.get("/api/health")
    def health() -> bool:
        return True

    with serve_in_thread(app) as base:
        yield f"{base}/api"


def write_record(path: Path, url: str, pid: int) -> None:
    record = StackRecord(url=url, pid=pid, prefect_home="/nowhere", started_at=datetime.now(UTC))
    path.write_text(record.model_dump_json())


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


# --- discovery -------------------------------------------------------------------------


def test_a_healthy_server_in_the_stack_file_is_used(
    no_configured_prefect: None, health_server: str, tmp_path: Path
) -> None:
    stack = tmp_path / "stack.json"
    write_record(stack, health_server, os.getpid())
    api = resolve_prefect_api(Settings(prefect_api_url=None, stack_file=stack))
    assert api is not None
    assert (api.url, api.source) == (health_server, ApiSource.STACK)


def test_prefect_api_url_wins_over_the_stack_file(
    no_configured_prefect: None, health_server: str, tmp_path: Path
) -> None:
    stack = tmp_path / "stack.json"
    write_record(stack, health_server, os.getpid())
    settings = Settings(prefect_api_url="http://127.0.0.1:9/api", stack_file=stack)
    api = resolve_prefect_api(settings)
    assert api is not None
    assert (api.url, api.source) == ("http://127.0.0.1:9/api", ApiSource.CONFIGURED)


def test_a_record_whose_process_is_gone_is_ignored(
    no_configured_prefect: None, health_server: str, tmp_path: Path
) -> None:
    stack = tmp_path / "stack.json"
    write_record(stack, health_server, dead_pid())  # the server answers, but not that process
    assert resolve_prefect_api(Settings(prefect_api_url=None, stack_file=stack)) is None


def test_a_record_whose_server_does_not_answer_is_ignored(
    no_configured_prefect: None, tmp_path: Path
) -> None:
    stack = tmp_path / "stack.json"
    write_record(stack, f"http://127.0.0.1:{free_port()}/api", os.getpid())
    assert resolve_prefect_api(Settings(prefect_api_url=None, stack_file=stack)) is None


def test_a_missing_or_unreadable_stack_file_means_no_server(
    no_configured_prefect: None, tmp_path: Path
) -> None:
    stack = tmp_path / "stack.json"
    assert resolve_prefect_api(Settings(prefect_api_url=None, stack_file=stack)) is None
    stack.write_text('{"url": "http://127.0.0.1:1/api"')
    assert resolve_prefect_api(Settings(prefect_api_url=None, stack_file=stack)) is None


def test_withdrawing_leaves_another_servers_record_alone(tmp_path: Path) -> None:
    stack = tmp_path / "stack.json"
    write_record(stack, "http://127.0.0.1:4200/api", 4242)
    withdraw_stack(stack, 4343)
    assert read_stack(stack) is not None
    withdraw_stack(stack, 4242)
    assert not stack.exists()


def test_inside_use_prefect_api_the_client_talks_to_the_stack_server(
    no_configured_prefect: None, health_server: str, tmp_path: Path
) -> None:
    stack = tmp_path / "stack.json"
    write_record(stack, health_server, os.getpid())
    said: list[str] = []
    with use_prefect_api(Settings(prefect_api_url=None, stack_file=stack), said.append) as api:
        assert PREFECT_API_URL.value() == api.url == health_server
    assert PREFECT_API_URL.value() is None
    assert said == [f"flow runs go to the Prefect server of `aitrader up`: {api.ui_url}"]


def test_shared_api_hands_children_the_configured_url_and_starts_nothing(
    no_configured_prefect: None, tmp_path: Path
) -> None:
    settings = Settings(prefect_api_url="http://127.0.0.1:9/api", prefect_startup_timeout_s=45.5)
    shared = SharedPrefectApi(settings)
    env = asyncio.run(shared.child_env())
    assert env == {
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "46",
    }
    assert shared.server is None


# --- LocalPrefectServer failing loudly -----------------------------------------------------


def test_a_server_that_exits_raises_with_its_exit_code_and_log(tmp_path: Path) -> None:
    fake_python = _script(tmp_path / "python", "echo 'cannot start: no database' >&2; exit 3")
    server = LocalPrefectServer(tmp_path / "home", python=str(fake_python), startup_timeout_s=60)
    with pytest.raises(PrefectServerError) as caught:
        server.start()
    message = str(caught.value)
    assert "exited with code 3" in message
    assert str(server.home) in message  # the log's path
    assert "last line: cannot start: no database" in message


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    fake_python = _script(tmp_path / "python", f"echo $$ > {pid_file}; exec sleep 600")
    server = LocalPrefectServer(tmp_path / "home", python=str(fake_python), startup_timeout_s=1)
    with pytest.raises(PrefectServerError, match="did not answer within 1 s"):
        server.start()
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped: no server is left behind


def test_a_taken_port_is_refused_before_anything_starts(health_server: str, tmp_path: Path) -> None:
    port = int(health_server.split(":")[-1].split("/")[0])
    server = LocalPrefectServer(tmp_path / "home", port=port)
    with pytest.raises(PrefectServerError, match=f"port {port} on 127.0.0.1 is in use"):
        server.start()


def test_a_start_waits_for_the_home_lock_and_names_its_holder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with (home / LOCK_NAME).open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("4242")
        lock.flush()
        server = LocalPrefectServer(home, python="false", startup_timeout_s=1)
        with pytest.raises(PrefectServerError, match="pid 4242 has been starting a Prefect"):
            server.start()


# --- many start-ups at once on one fresh home -----------------------------------------------


def test_flow_runs_started_together_on_one_fresh_home_all_complete(
    no_configured_prefect: None, tmp_path: Path
) -> None:
    home = tmp_path / "prefect"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "STACK_FILE": str(tmp_path / "no-stack.json"),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }
    python = sys.executable
    flows: dict[str, subprocess.Popen[str]] = {}

    def run_flow(name: str, extra: dict[str, str]) -> None:
        flows[name] = subprocess.Popen(
            [python, "-c", FLOW_PROCESS, name],
            env=env | extra,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    # What the realtime server does for its job workers: one server, started on first use.
    shared = SharedPrefectApi(
        Settings(prefect_api_url=None, stack_file=env["STACK_FILE"], prefect_home=home)
    )

    async def start_shared_server() -> list[dict[str, str]]:
        return list(await asyncio.gather(shared.child_env(), shared.child_env()))

    try:
        for name in ("private-1", "private-2"):
            run_flow(name, {})
        first, second = asyncio.run(start_shared_server())  # with the two, at once
        assert first == second  # two asked at once, one server started
        for name in ("shared-1", "shared-2"):
            run_flow(name, first)
        outputs = {name: process.communicate(timeout=240)[0] for name, process in flows.items()}
        api = first["PREFECT_API_URL"]
        shown = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
    finally:
        children: list[subprocess.Popen[Any]] = [*flows.values()]
        for process in children:
            process.kill()
            process.wait()
        asyncio.run(shared.aclose())

    for name, process in flows.items():
        assert process.returncode == 0, outputs[name]
        assert not [b for b in BROKEN if b in outputs[name]], outputs[name]
    private = r"a private server http://127\.0\.0\.1:\d+/api COMPLETED$"
    shared_run = f"PREFECT_API_URL {re.escape(api)} COMPLETED$"
    for name in flows:
        expected = private if name.startswith("private") else shared_run
        assert re.search(f"^{name} {expected}", outputs[name], re.MULTILINE), outputs[name]
    # every run landed in the one database: the shared server shows all four
    assert {r["name"] for r in shown} >= {"private-1", "private-2", "shared-1", "shared-2"}
    assert {r["state_type"] for r in shown} == {"COMPLETED"}


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path
