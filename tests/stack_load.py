"""The whole stack under concurrent use, as a new user drives it: one load run, and its report.

A real `aitrader serve` process (simulator, pattern engine writing signals,
chat trades executing on the paper broker, jobs in worker processes) on a
database that already holds the sample bars, and beside it, at the same time:

* a council job through `POST /api/jobs` (approval auto, executing),
* a backtest sweep through `POST /api/jobs`,
* `aitrader data import` of the shared daily file (592k rows),
* a chat client placing trades ("buy 1 AAPL") and a second client writing its
  watchlist, both until `duration_s` has passed.

Clients behave as the README tells them to: every mutating request carries an
`Idempotency-Key`, and a 503 or a dropped connection is retried with the same
key (Retry-After honoured). The report counts what a user would complain
about: "database is locked" anywhere in the logs, 5xx answers, jobs that did
not end (or ended without a cause), and orders at the paper broker that no 2xx
answer accounts for (an effect behind an error) or 2xx trades the broker never
got. `bench/`-style numbers for the closing note come from the same report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from models.trading import Order, TradeIntent
from tests.live_server import free_port

REPO = Path(__file__).resolve().parent.parent
LOCKED = "database is locked"
FINAL = {"completed", "failed", "canceled"}
PACE_S = 0.05  # between a client's requests: busy users, not a benchmark burning the cores
WATCHED = ["AAPL", "MSFT", "NVDA", "KO", "JPM", "XOM"]


@dataclass
class LoadReport:
    """What one load run saw."""

    backend: str
    seconds: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)  # "POST /api/watchlist 201"
    server_errors: list[str] = field(default_factory=list)  # one line per 5xx answer
    lock_lines: list[str] = field(default_factory=list)  # "database is locked", with where
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> final job body
    import_exit: int | None = None
    import_output: str = ""
    council_exit: int | None = None  # `aitrader council run` in a terminal beside the server
    council_output: str = ""
    flows_started_s: float = 0.0  # until every flow had started (cores kept busy meanwhile)
    chat_answered: int = 0  # 2xx chat replies
    chat_trades_answered: set[str] = field(default_factory=set)  # their entry orders' cids
    broker_entries: set[str] = field(default_factory=set)  # entry cids at the paper broker
    chat_entries: set[str] = field(default_factory=set)  # those of chat intents
    council_entries: set[str] = field(default_factory=set)  # those of council intents
    stuck_runs: list[str] = field(default_factory=list)  # council runs left running
    client_failures: list[str] = field(default_factory=list)  # requests that never got an answer

    @property
    def effects_behind_errors(self) -> set[str]:
        """Orders the broker holds that no 2xx answer (nor a completed job) accounts for."""
        return self.broker_entries - self.chat_trades_answered - self.council_entries

    @property
    def answered_not_sent(self) -> set[str]:
        """Chat trades a 2xx reply said were sent that the broker does not hold."""
        return self.chat_trades_answered - self.broker_entries

    @property
    def unfinished_jobs(self) -> list[str]:
        return [
            f"job {i} ({j.get('type')}): {j.get('status')} {j.get('error') or ''}".strip()
            for i, j in self.jobs.items()
            if j.get("status") not in FINAL
            or (j.get("status") != "completed" and not j.get("error"))
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "seconds": round(self.seconds, 1),
            "requests": sum(self.requests.values()),
            "lock_errors": len(self.lock_lines),
            "5xx": len(self.server_errors),
            "jobs": {i: j.get("status") for i, j in self.jobs.items()},
            "unfinished_jobs": len(self.unfinished_jobs),
            "stuck_council_runs": len(self.stuck_runs),
            "import_exit": self.import_exit,
            "cli_council_exit": self.council_exit,
            "flows_started_s": round(self.flows_started_s, 1),
            "chat_replies_2xx": self.chat_answered,
            "broker_entry_orders": len(self.broker_entries),
            "effects_behind_errors": len(self.effects_behind_errors),
            "answered_not_sent": len(self.answered_not_sent),
            "client_failures": len(self.client_failures),
        }

    def details(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "lock_lines": self.lock_lines[:50],
            "server_errors": self.server_errors[:50],
            "job_bodies": self.jobs,
            "import_tail": self.import_output[-3000:],
            "council_tail": self.council_output[-3000:],
            "effects": sorted(self.effects_behind_errors),
            "stuck": self.stuck_runs,
            "client_failures": self.client_failures,
            "request_counts": dict(self.requests),
        }


class Client:
    """A dashboard client with one token: idempotency keys on writes, retries as told."""

    def __init__(self, base: str, token: str, report: LoadReport, lock: threading.Lock) -> None:
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
        self.report = report
        self.lock = lock

    def call(self, method: str, path: str, *, retries: int = 8, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if method != "GET":
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
        last: Exception | None = None
        for _ in range(retries):
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:  # dropped: retry with the same key
                last = exc
                time.sleep(0.5)
                continue
            self._count(method, path, response)
            if response.status_code in (409, 503) and "retry-after" in response.headers:
                time.sleep(min(float(response.headers["retry-after"]), 5.0))
                continue
            return response
        with self.lock:
            self.report.client_failures.append(f"{method} {path}: {last or 'retries exhausted'}")
        raise RuntimeError(f"{method} {path}: no answer after {retries} tries ({last})")

    def _count(self, method: str, path: str, response: httpx.Response) -> None:
        route = "/".join(p if not p.isdigit() else "{id}" for p in path.split("/"))
        with self.lock:
            self.report.requests[f"{method} {route} {response.status_code}"] += 1
            if response.status_code >= 500:
                self.report.server_errors.append(
                    f"{method} {path} {response.status_code}: {response.text[:300]}"
                )
            if LOCKED in response.text:
                self.report.lock_lines.append(f"http {method} {path}: {response.text[:200]}")

    def close(self) -> None:
        self.http.close()


@dataclass
class Stack:
    """`aitrader serve` running on loopback, as a user starts it, with two trader tokens."""

    base: str
    env: dict[str, str]
    workdir: Path
    tokens: dict[str, str]


@contextmanager
def serving(database_url: str, workdir: Path) -> Iterator[Stack]:
    """Run `aitrader serve` (process job runner, chat trades executing) until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = _environment(database_url, workdir)
    tokens = _tokens(database_url)
    port = free_port()
    with (workdir / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, server)
        yield Stack(base, env, workdir, tokens)
    finally:
        _stop(server)


def aitrader(stack: Stack, *args: str) -> subprocess.Popen[bytes]:
    """An `aitrader` command beside the server, as a second terminal would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=stack.workdir,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def lock_lines(workdir: Path, *outputs: str) -> list[str]:
    """Every "database is locked" in the server's and the jobs' logs and in `outputs`."""
    found = []
    for path in [workdir / "server.log", *sorted((workdir / "jobs").glob("*.log"))]:
        if path.exists():
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if LOCKED in line:
                    found.append(f"{path.name}:{n}: {line[:300]}")
    for i, output in enumerate(outputs):
        found += [f"output {i}: {line[:300]}" for line in output.splitlines() if LOCKED in line]
    return found


def run_stack_load(
    backend: str,
    database_url: str,
    workdir: Path,
    shared_file: Path,
    *,
    duration_s: float = 60,
    busy_start: bool = True,
) -> LoadReport:
    """Start everything at once (with `busy_start`, on a machine whose two cores are kept
    busy until every flow run has started), load it for `duration_s`, wait for the jobs and
    the terminal's council, stop; return what was seen. The database holds the sample bars
    and is at the migration head; the Prefect home is fresh."""
    report = LoadReport(backend)
    started = time.monotonic()
    spinners = _spin(2) if busy_start else []
    try:
        with serving(database_url, workdir) as stack:
            lock = threading.Lock()
            chat = Client(stack.base, stack.tokens["chat"], report, lock)
            watcher = Client(stack.base, stack.tokens["watch"], report, lock)
            deadline = time.monotonic() + duration_s
            jobs = [
                start_job(chat, {"type": "council", "params": council_params()}),
                start_job(chat, {"type": "backtest", "params": sweep_params()}),
            ]
            council = aitrader(stack, "council", "run", *COUNCIL_ARGS)  # the demo's council
            importer = aitrader(stack, "data", "import", str(shared_file))
            threads = [
                threading.Thread(target=_guard(report, _chat_loop, chat, deadline), name="c"),
                threading.Thread(target=_guard(report, _watch_loop, watcher, deadline), name="w"),
            ]
            for t in threads:
                t.start()
            _until_flows_started(chat, [j for j in jobs if j is not None], council)
            _stop_spinning(spinners)
            report.flows_started_s = time.monotonic() - started
            out, _ = importer.communicate(timeout=duration_s + 600)
            report.import_exit = importer.returncode
            report.import_output = out.decode(errors="replace")
            out, _ = council.communicate(timeout=600)
            report.council_exit = council.returncode
            report.council_output = out.decode(errors="replace")
            for t in threads:
                t.join()
            for job_id in jobs:
                if job_id is not None:
                    report.jobs[job_id] = wait_job(chat, job_id, timeout_s=600)
            report.seconds = time.monotonic() - started
            chat.close()
            watcher.close()
    finally:
        _stop_spinning(spinners)
    _collect(report, database_url, workdir)
    return report


COUNCIL_ARGS = (
    "--approval", "auto", "--as-of", "2019-12-27", "--symbols", "AAPL,MSFT,NVDA,JPM,XOM,KO",
)  # fmt: skip


def _spin(n: int) -> list[subprocess.Popen[bytes]]:
    """`n` processes that keep a core each busy: a loaded machine."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _stop_spinning(spinners: list[subprocess.Popen[bytes]]) -> None:
    for spinner in spinners:
        if spinner.poll() is None:
            spinner.kill()
            spinner.wait()


def _until_flows_started(
    client: Client, job_ids: list[int], council: subprocess.Popen[bytes], timeout_s: float = 300
) -> None:
    """Until both jobs left `pending` and the terminal's council has a job row of its own
    (its flow is running): Prefect servers up, migrations done, flows started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = client.call("GET", "/api/jobs", params={"limit": 50}).json()["items"]
        by_id = {row["id"]: row for row in rows}
        jobs_started = all(by_id.get(j, {}).get("status") not in (None, "pending") for j in job_ids)
        cli_started = council.poll() is not None or any(r["runner"] == "cli" for r in rows)
        if jobs_started and cli_started:
            return
        time.sleep(1)


# --- the clients' work -------------------------------------------------------------------


def _chat_loop(client: Client, deadline: float) -> None:
    conversation = client.call("POST", "/api/conversations", json={"title": "load"}).json()
    while time.monotonic() < deadline:
        response = client.call(
            "POST",
            f"/api/conversations/{conversation['id']}/message",
            json={"content": "buy 1 AAPL"},
        )
        time.sleep(PACE_S)
        if response.is_success:
            payload = response.json().get("payload") or {}
            with client.lock:
                client.report.chat_answered += 1
                for trade in payload.get("trades", []):
                    if trade.get("intent_id") and trade.get("order_status"):
                        client.report.chat_trades_answered.add(str(trade["intent_id"]))


def _watch_loop(client: Client, deadline: float) -> None:
    i = 0
    while time.monotonic() < deadline:
        symbol = WATCHED[i % len(WATCHED)]
        client.call("POST", "/api/watchlist", json={"symbol": symbol})
        client.call("DELETE", f"/api/watchlist/{symbol}")
        time.sleep(PACE_S)
        i += 1


def _guard(
    report: LoadReport, fn: Callable[[Client, float], None], *args: Any
) -> Callable[[], None]:
    def run() -> None:
        try:
            fn(*args)
        except Exception as exc:  # a thread's edge: the report says what went wrong
            report.client_failures.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")

    return run


def start_job(client: Client, body: dict[str, Any]) -> int | None:
    response = client.call("POST", "/api/jobs", json=body)
    if not response.is_success:
        client.report.client_failures.append(f"job {body['type']}: {response.status_code}")
        return None
    job_id: int = response.json()["id"]
    return job_id


def wait_job(client: Client, job_id: int, *, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.call("GET", f"/api/jobs/{job_id}")
        body = response.json() if response.is_success else body
        if body.get("status") in FINAL:
            return body
        time.sleep(1)
    return body


def council_params() -> dict[str, Any]:
    return {
        "as_of": "2019-12-27",
        "universe": ["AAPL", "MSFT", "NVDA", "JPM", "XOM", "KO", "PG", "INTC"],
        "approval": "auto",
    }


def sweep_params() -> dict[str, Any]:
    return {
        "strategy": "sma_cross",
        "params": {"fast": [5, 10, 15, 20], "slow": [50, 100, 150]},
        "symbols": ["AAPL", "MSFT", "JPM"],
        "start": "2016-01-01",
        "end": "2019-12-31",
    }


# --- set-up and collection -----------------------------------------------------------------


def _environment(database_url: str, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL",))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "PYTHONPATH": str(REPO),
            "CHAT_EXECUTE": "true",
            "JOBS_RUNNER": "process",
            "JOBS_LOG_DIR": str(workdir / "jobs"),
            "PAPER_STATE_DIR": str(workdir / "paper"),
            "BACKTEST_PLOT_DIR": str(workdir / "plots"),
            "PREFECT_HOME": str(workdir / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "API_LLM_RATE_PER_MINUTE": "10000",
            "API_ANONYMOUS_READ": "false",
            "SIM_INTERVAL_MS": "100",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "REDIS_URL": "",
        }
    )
    return env


def _tokens(database_url: str) -> dict[str, str]:
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            return {
                name: issue_token(session, f"load-{name}", Role.TRADER, name=name).secret
                for name in ("chat", "watch")
            }
    finally:
        engine.dispose()


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"aitrader serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("aitrader serve was not ready within 120 s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if server.poll() is not None:
            return
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            continue


def _collect(report: LoadReport, database_url: str, workdir: Path) -> None:
    report.lock_lines += lock_lines(workdir, report.import_output, report.council_output)
    state = json.loads((workdir / "paper" / "paper.json").read_text())
    report.broker_entries = {
        r["order"]["client_order_id"] for r in state["orders"].values() if r["parent_id"] is None
    }
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.execute(
                select(Order.client_order_id, TradeIntent.id, TradeIntent.idempotency_key)
                .join(TradeIntent, Order.intent_id == TradeIntent.id)
                .where(Order.parent_id.is_(None))
            ).all()
            by_intent = {str(intent_id): cid for cid, intent_id, _ in rows}
            report.chat_entries = {cid for cid, _, key in rows if key.startswith("chat-")}
            report.council_entries = {cid for cid, _, key in rows if not key.startswith("chat-")}
            report.chat_trades_answered = {
                by_intent[i] for i in report.chat_trades_answered if i in by_intent
            }
            from models.council import CouncilRun

            report.stuck_runs = [
                f"council run {r.id}: {r.status}"
                for r in session.scalars(select(CouncilRun))
                if str(r.status) not in FINAL
            ]
    finally:
        engine.dispose()
