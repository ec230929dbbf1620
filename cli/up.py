"""`aitrader up`: the local stack in one terminal; Ctrl-C stops all of it.

Three processes, started in order: a Prefect server (SQLite under
`--prefect-home`, run by `LocalPrefectServer`: started under the home's start
lock, waited for until `/api/health` answers, its output in
`HOME/server-PORT.log`), the served deployments (`python -m
deployments.serve`: the weekly council on its schedule) and the realtime
process (`aitrader serve`). The Prefect server listens on 127.0.0.1 only.
Every child gets `PREFECT_HOME` and `PREFECT_API_URL` pointing at that server,
through an `env NAME=VALUE ...` prefix: each command line is complete as
printed, the rest of the environment is inherited, and nothing here reads the
environment (only services/settings.py does; tests/test_layering.py checks).

Once the server is healthy its URL and pid go to `STACK_FILE`
(`data/stack.json`), removed on stop: commands run beside the stack (`aitrader
council run`, `backtest run`, `council approve`, ...) find it there and run
their flows on it, so they show in its UI (services/prefect_api.py).

"AITrader is up" is printed once the realtime server answers `/health`, not
when its process is spawned (its start-up takes 20-60 s); a child that dies
first, or a server that does not answer within `REALTIME_STARTUP_TIMEOUT_S`,
stops the stack with exit code 1. The realtime port is probed before anything
starts (cli/ports.py), so a taken port is one line, not a stack half started.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only
this process, which then stops the children in reverse order (SIGINT, then
SIGTERM, then SIGKILL for one that does not stop) and waits for each. SIGTERM
is handled the same way. Both handlers are installed before the children
start: a child inherits an ignored SIGINT (a shell's background job, nohup)
but not a handler, so each child starts with SIGINT at its default and stops
on the first signal. If a child dies, the others are stopped and the exit
code is 1. POSIX only.

The Prefect helpers are imported inside the functions (they bring httpx and
pydantic): `aitrader up --help` must answer in 0.5 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer

from cli.context import console, err_console, open_context, run_command
from cli.ports import check_can_listen
from models.errors import AITraderError

if TYPE_CHECKING:
    from services.prefect_server import LocalPrefectServer

STOP_GRACE_S = 15.0
REALTIME_STARTUP_TIMEOUT_S = 300.0  # a busy laptop took 60 s; a hung start must not wait forever
HEALTH_POLL_S = 0.5
NOTIFY_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class Child:
    """A process of the stack: a name for messages and its full command line."""

    name: str
    argv: tuple[str, ...]


class StackError(AITraderError):
    """A process of the local stack failed to start or died."""


def stack_commands(
    *,
    host: str,
    port: int,
    prefect_port: int,
    prefect_home: Path,
    python: str = sys.executable,
) -> list[Child]:
    """The stack's command lines, in start order. Pure: nothing is started or read.

    The Prefect settings are passed through `env NAME=VALUE ...` so each command
    line is complete as printed and the rest of the environment is inherited.
    """
    from services.prefect_server import api_url, default_database_url, server_command

    home = prefect_home.resolve()
    env = (
        "env",
        f"PREFECT_HOME={home}",
        f"PREFECT_API_URL={api_url(prefect_port)}",
        f"PREFECT_SERVER_DATABASE_CONNECTION_URL={default_database_url(home)}",
    )
    realtime = ("serve", "--host", host, "--port", str(port))
    return [
        Child("prefect", server_command(home, prefect_port, python=python)),
        Child("deployments", (*env, python, "-m", "deployments.serve")),
        Child("realtime", (*env, python, "-m", "cli.main", *realtime)),
    ]


@run_command
def up(
    host: str = typer.Option("127.0.0.1", help="Interface of the realtime server."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port of the realtime server."),
    prefect_port: int = typer.Option(4200, min=1, max=65535, help="Port of the Prefect server."),
    prefect_home: Path | None = typer.Option(
        None,
        help="Prefect's home: its SQLite database, profiles, logs "
        "[default: PREFECT_HOME, else data/prefect].",
    ),
) -> None:
    """Start Prefect, the scheduled flows and the realtime server; Ctrl-C stops all."""
    from services.prefect_api import publish_stack, withdraw_stack
    from services.prefect_server import LocalPrefectServer

    check_can_listen(host, port, holder="another aitrader serve or up?")
    ctx = open_context()
    ctx.require_schema()  # fail here, not in a child, on a database that needs `db upgrade`
    ctx.engine.dispose()
    home = prefect_home or ctx.settings.prefect_home
    home.mkdir(parents=True, exist_ok=True)
    children = stack_commands(host=host, port=port, prefect_port=prefect_port, prefect_home=home)
    server = LocalPrefectServer(
        home,
        port=prefect_port,
        startup_timeout_s=ctx.settings.prefect_startup_timeout_s,
        stop_grace_s=STOP_GRACE_S,
        notify=_say,
    )
    stack_file = ctx.settings.stack_file
    running: list[tuple[Child, subprocess.Popen[bytes]]] = []
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in handlers:  # before any child starts: see the module's docstring
        signal.signal(sig, _interrupt)
    try:
        _say(f"starting prefect: {' '.join(server.argv)}  (log: {server.log_path})")
        server.start()
        publish_stack(stack_file, server)
        for child in children[1:]:
            running.append(_start(child))
        _wait_until_serving(health_url(host, port), server, running)
        _wait_until_deployed(server.api_url, served_deployments(), server, running)
        console.print(
            f"AITrader is up. Prefect UI: {server.ui_url}  "
            f"realtime API: http://{host}:{port} (docs: /docs)\n"
            f"Councils pause for approval: `aitrader council approve RUN_ID` from this "
            f"directory (it finds this Prefect server in {stack_file}). "
            "Ctrl-C stops everything.",
            highlight=False,
        )
        name, code = _wait_for_exit(server, running)
        raise StackError(f"{name} exited with code {code}, so the stack was stopped")
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        # Stopping is bounded (SIGKILL last); another Ctrl-C must not cut it short.
        for sig in handlers:
            signal.signal(sig, signal.SIG_IGN)
        _stop(running)
        if server.pid is not None:
            withdraw_stack(stack_file, server.pid)
        if (exit_code := server.stop()) is not None:
            console.print(f"prefect stopped ({exit_code})")
        for sig, handler in handlers.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    console.print("stopped")


def _start(child: Child) -> tuple[Child, subprocess.Popen[bytes]]:
    console.print(f"starting {child.name}: {' '.join(child.argv)}", highlight=False, soft_wrap=True)
    return child, subprocess.Popen(child.argv, start_new_session=True)  # noqa: S603


def health_url(host: str, port: int) -> str:
    """Where to ask the realtime server if it answers: a wildcard host is asked on loopback."""
    wildcard = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104 (a lookup)
    local = wildcard.get(host, host)
    return f"http://{f'[{local}]' if ':' in local else local}:{port}/health"


def served_deployments() -> list[str]:
    """`flow/deployment` names `python -m deployments.serve` registers (the job types' own)."""
    import importlib.util

    names = [
        "weekly-council/weekly-council",
        "backtest/backtest",
        "council-backtest/council-backtest",
        "pattern-scan/pattern-scan",
        "suggestion/suggestion",
        "sentiment-analysis/sentiment-analysis",
    ]
    if importlib.util.find_spec("torch") is not None:  # the ml extra: training is served
        names.append("training/training")
    return names


def _wait_until_deployed(
    prefect_api: str,
    names: Sequence[str],
    server: LocalPrefectServer,
    running: Sequence[tuple[Child, subprocess.Popen[bytes]]],
    timeout_s: float = REALTIME_STARTUP_TIMEOUT_S,
) -> None:
    """Return once the Prefect server knows every deployment in `names`: a job started
    before then would be refused ("no deployment") although the stack is starting fine."""
    import httpx

    began = told = time.monotonic()
    missing = list(names)
    with httpx.Client(timeout=2.0) as client:
        while (ended := _exited(server, running)) is None:
            with contextlib.suppress(httpx.HTTPError):
                missing = [
                    name
                    for name in missing
                    if client.get(f"{prefect_api}/deployments/name/{name}").status_code != 200
                ]
            if not missing:
                return
            now = time.monotonic()
            if now - began > timeout_s:
                raise StackError(
                    f"the served flows did not register {', '.join(missing)} within "
                    f"{timeout_s:.0f} s, so the stack was stopped"
                )
            if now - told >= NOTIFY_EVERY_S:
                told = now
                _say(f"still waiting for the flows to be served: {', '.join(missing)} ...")
            time.sleep(HEALTH_POLL_S)
    name, code = ended
    raise StackError(f"{name} exited with code {code} before the flows were served")


def _wait_until_serving(
    url: str,
    server: LocalPrefectServer,
    running: Sequence[tuple[Child, subprocess.Popen[bytes]]],
    timeout_s: float = REALTIME_STARTUP_TIMEOUT_S,
) -> None:
    """Return once `url` answers 200; `StackError` if a process dies first or time runs out.

    Says every `NOTIFY_EVERY_S` that it is still waiting: a silent minute looks hung.
    """
    import httpx

    began = told = time.monotonic()
    _say(f"waiting for the realtime server at {url} ...")
    with httpx.Client(timeout=2.0) as client:
        while (ended := _exited(server, running)) is None:
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if client.get(url).status_code == 200:
                    return
            now = time.monotonic()
            if now - began > timeout_s:
                raise StackError(
                    f"the realtime server did not answer {url} within {timeout_s:.0f} s, "
                    "so the stack was stopped"
                )
            if now - told >= NOTIFY_EVERY_S:
                told = now
                _say(f"still waiting for the realtime server ({now - began:.0f} s) ...")
            time.sleep(HEALTH_POLL_S)
    name, code = ended
    raise StackError(f"{name} exited with code {code} before the realtime server answered")


def _wait_for_exit(
    server: LocalPrefectServer, running: Sequence[tuple[Child, subprocess.Popen[bytes]]]
) -> tuple[str, int]:
    while (ended := _exited(server, running)) is None:
        time.sleep(0.5)
    return ended


def _exited(
    server: LocalPrefectServer, running: Sequence[tuple[Child, subprocess.Popen[bytes]]]
) -> tuple[str, int] | None:
    """The first process of the stack found ended, with its exit code; None if all run."""
    if (code := server.poll()) is not None:
        return "prefect", code
    for child, process in running:
        if (code := process.poll()) is not None:
            return child.name, code
    return None


def _stop(running: list[tuple[Child, subprocess.Popen[bytes]]]) -> None:
    """Stop the children last-started first; each gets SIGINT, SIGTERM, then SIGKILL."""
    for child, process in reversed(running):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            _signal_group(process, sig)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                err_console.print(f"{child.name} did not stop on {sig.name}")
        console.print(f"{child.name} stopped ({process.returncode})")


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the child's process group: its own children (flow runs, workers) too."""
    # The child leads its own session (start_new_session), so its group id is its pid.
    with contextlib.suppress(ProcessLookupError):  # gone already
        os.killpg(process.pid, sig)


def _say(line: str) -> None:
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C, and SIGTERM the same way, stop the stack (even if SIGINT came in ignored)."""
    raise KeyboardInterrupt
