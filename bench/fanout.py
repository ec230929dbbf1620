"""Benchmark: fan-out of prices to many SSE (and WebSocket) clients, against plain sse-starlette.

Each server runs in its own uvicorn process (so client CPU never counts as
server CPU) on a free loopback port; the clients run in `--client-procs`
processes (`_fanout_clients.py`), thousands of asyncio streams each. Rows:

* aitrader SSE: the real app (`api.app.create_app`) with the GBM simulator
  stepping `--symbols` symbols every `--sim-interval-ms` (default: the same
  as `--interval-ms`), the SSE hub publishing every `--interval-ms`;
  clients read `GET /api/stream/prices`.
* aitrader WS (`--ws N`): the same app, clients on `/ws` subscribed to
  `market_data`. Skipped with a note if `/ws` answers 404.
* with `--replica`, the aitrader rows are served by one api replica
  (`aitrader serve`, REALTIME_ROLE=api) that follows an ingest process
  (REALTIME_ROLE=ingest: the same simulator, engines and books) over Redis
  (`--redis-url`, a database of the bench's own, flushed before each
  server); both get the environment the embedded app gets. The tick's `ts`
  is stamped by the ingest process, so lag includes the ingest -> Redis ->
  replica hop (`--market-publish-ms`, MARKET_PUBLISH_MS). Server CPU and RSS
  are the replica's; the ingest process's CPU is reported beside it.
* baseline sse-starlette: the simplest fan-out, measured in the same run:
  every client's generator sleeps one interval, builds and serialises its
  own array of `--symbols` snapshot-like dicts with a fresh `ts`.

Measured over `--duration` seconds after all clients connected and
`--warmup` seconds passed:

* receive time: for SSE, when the kernel queued the data on the client's
  socket (`SO_TIMESTAMPNS`; on loopback that is when the server sent it), so
  a busy client loop does not count ("read delay" says how long the loop
  took to get there); for WS, when the client loop got the message.
* lag = receive time - newest `ts` in the event. For aitrader `ts` is
  the tick's event time, so lag includes the wait between the simulator step
  and the hub's next publish; for the baseline `ts` is stamped when the
  event is built, so its lag is pure delivery.
* fan-out = receive time - publish time: the delivery part alone. Publish
  time is the baseline's `ts`, the WS envelope's `ts`, and for aitrader SSE
  (which does not send it) the first receipt of the same event id by any client.
* tick age at publish = publish time - newest `ts`: lag = age + fan-out.
* missed = expected events (clients x duration / interval) - received.
* server CPU: utime+stime of the server process over the window, % of one
  core; client CPU likewise, summed over client processes (max of one in
  brackets). The client loop lag (lateness of a 10 ms sleep) shows bursts
  that a window average hides.
* other CPU: what the rest of the machine used over the window (from
  /proc/stat: all busy time minus the server's, the ingest process's and the
  clients'), in cores: this VM is shared, and a neighbour's burst is our lag.
* RSS/conn = (server RSS with the clients - RSS before they connected) / clients.
  With `--rounds N` the clients connect, are measured and disconnect N times
  against the same server; each round's "before" is the previous round's
  "after", so memory that is not reused shows up as RSS/conn in later rounds.

Usage: python bench/fanout.py [--sse 2000] [--ws 0] [--symbols 30] [--interval-ms 500]
                              [--sim-interval-ms 500]
                              [--duration 20] [--warmup 5] [--client-procs 2] [--rounds 1]
                              [--ws-compression none|deflate] [--quick] [--dashboards]
                              [--replica [--redis-url URL] [--market-publish-ms 20]]
                              [--repeat N] [--idle-clients] [--quiet-below CORES]
--quick: 200 clients (and at most 200 WS clients), 3 s warm-up, 8 s measured.
--repeat N: each aitrader row N times, each on a fresh server (and ingest process), then
the baseline once; with --dashboards, the plain, dashboards and control rows interleaved.
--idle-clients: the client processes run under SCHED_IDLE, like the dashboards' browsers:
in use they are other machines; here, waking on every send, they would preempt the server
mid-fan-out. Their receive times are the kernel's, so their own delays are not lag.
--quiet-below CORES: this VM is shared; before each row, wait until the machine is quiet.
--dashboards: each aitrader row is measured again, on a fresh server, with one Chromium
per 500 clients holding the dashboard open (bench/_dashboard_browsers.py): the page's own
SSE and WebSocket clients should not change the figures. A control row has the same
browsers watching another server: on one machine the browsers' drawing takes CPU from
the server and the clients, which the control separates from the page's connections.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import TypeVar

import numpy as np
import redis
from _fanout_clients import ClientJob, Ready, Received, Window, probe_ws, run_clients
from fastapi import FastAPI
from sse_starlette import EventSourceResponse

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `tests` (the replica stack) is not an installed package

from api.app import create_app  # noqa: E402
from db.engine import make_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from services.settings import load_settings  # noqa: E402
from tests.replica_stack import replica_stack  # noqa: E402

T = TypeVar("T")
BENCH = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 150.0
RESULTS_TIMEOUT_S = 60.0
CLIENTS_PER_BROWSER = 500
QUIET_SAMPLE_S = 5.0
QUIET_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Phase:
    label: str
    factory: str  # function in this module that uvicorn calls to build the app
    kind: str  # "sse" | "ws"
    path: str
    clients: int
    browsers: int = 0  # dashboards open in Chromium beside the bench clients (--dashboards)
    elsewhere: bool = False  # the dashboards on another server: their CPU, not their clients
    run: int = 0  # with --repeat: which of the interleaved runs (1-based)
    replica: bool = False  # served by an api replica behind an ingest process (--replica)

    def with_dashboards(self, elsewhere: bool = False) -> Phase:
        browsers = math.ceil(self.clients / CLIENTS_PER_BROWSER)
        where = " on another server" if elsewhere else ""
        label = f"{self.label} + {browsers} dashboard{'s' if browsers > 1 else ''}{where}"
        return replace(self, label=label, browsers=browsers, elsewhere=elsewhere)


@dataclass(frozen=True)
class Row:
    server: str
    round: int  # 0 when there is one round
    requested: int
    connected: int
    load_1m: float
    events_per_client_s: float
    lag_ms: tuple[float, float, float]  # p50, p99, max
    fanout_ms: tuple[float, float]  # p50, p99
    age_ms: tuple[float, float]  # p50, p99: newest tick's age when the event was published
    read_delay_ms: tuple[float, float]  # p99, max: kernel queued the data -> our loop read it
    loop_lag_ms: tuple[float, float]  # p99, max: lateness of a 10 ms sleep in a client loop
    missed: int
    expected: int
    server_cpu: float
    client_cpu: float
    client_cpu_max: float
    rss_idle_mb: float
    rss_loaded_mb: float
    rss_after_mb: float
    failed: int
    ended: int
    silent_clients: int
    event_ids: int  # distinct SSE ids; one per published frame unless clients fell behind
    rows_per_event: float
    malformed: int
    errors: list[str]
    server_log: list[str]
    run: int = 0
    browsers: int = 0
    browser_cpu: float = 0.0  # the dashboards' browsers (every process), % of one core
    ingest_cpu: float = math.nan  # --replica: the ingest process, % of one core
    other_cpu: float = math.nan  # the rest of the machine over the window, in cores

    @property
    def label(self) -> str:
        label = f"{self.server} (round {self.round})" if self.round else self.server
        return f"{label} (run {self.run})" if self.run else label

    @property
    def rss_per_conn_kb(self) -> float:
        return (self.rss_loaded_mb - self.rss_idle_mb) * 1024 / max(self.connected, 1)


@dataclass(frozen=True)
class Server:
    """A measured server process; `ingest` is the process feeding it (--replica)."""

    pid: int
    port: int
    logs: tuple[Path, ...]
    ingest: int | None = None


# --- the servers (uvicorn --factory fanout:<name>) ------------------------------------


def aitrader_app() -> FastAPI:
    """The real realtime app, configured from the environment the bench sets."""
    return create_app(load_settings())


def baseline_app() -> FastAPI:
    """One sse-starlette endpoint written the simplest way: each client serialises its own."""
    settings = load_settings()
    interval = settings.sse_interval_ms / 1000
    prices = {s: 100.0 + i for i, s in enumerate(settings.realtime_symbols)}
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/prices")
    async def stream() -> EventSourceResponse:
        async def events() -> AsyncIterator[dict[str, str]]:
            version = 0
            while True:
                await asyncio.sleep(interval)
                version += 1
                ts = datetime.now(UTC).isoformat()
                rows = [
                    {
                        "symbol": s,
                        "price": p,
                        "prev_price": p,
                        "day_open": p,
                        "change": 0.0,
                        "change_pct": 0.0,
                        "direction": 0,
                        "ts": ts,
                        "version": version,
                    }
                    for s, p in prices.items()
                ]
                yield {"event": "prices", "data": json.dumps(rows, separators=(",", ":"))}

        return EventSourceResponse(events())

    return app


# --- the run ---------------------------------------------------------------------------


def main() -> None:
    # A plain `kill` must stop the servers too: the replica stack's run in their own
    # sessions, and only the context managers' exits (SystemExit, not SIGTERM) end them.
    signal.signal(signal.SIGTERM, _terminated)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sse", type=int, default=2000, help="SSE clients per server")
    parser.add_argument("--ws", type=int, default=0, help="WebSocket clients (0: skip)")
    parser.add_argument(
        "--ws-compression", choices=["none", "deflate"], default="none", help="offer deflate?"
    )
    parser.add_argument("--symbols", type=int, default=30)
    parser.add_argument("--interval-ms", type=int, default=500, help="SSE/WS push interval")
    parser.add_argument(
        "--sim-interval-ms", type=int, default=0, help="simulator step; 0: --interval-ms"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=1, help="connect/measure/disconnect N times per server"
    )
    parser.add_argument("--quick", action="store_true", help="200 clients, 3 s + 8 s")
    parser.add_argument(
        "--dashboards",
        action="store_true",
        help="measure each aitrader row again with one browser on the dashboard per "
        f"{CLIENTS_PER_BROWSER} clients (Market and Signals views open)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each aitrader row N times, each on a fresh server; with --dashboards "
        "the plain, dashboards and control rows interleaved, and the medians of their ratios",
    )
    parser.add_argument(
        "--replica",
        action="store_true",
        help="aitrader rows: one api replica (aitrader serve) fed by an ingest process "
        "over Redis, instead of the embedded app",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/11",
        help="--replica: a Redis database of the bench's own (FLUSHDB before each server)",
    )
    parser.add_argument(
        "--market-publish-ms",
        type=int,
        default=20,
        help="--replica: MARKET_PUBLISH_MS, how often the ingest process sends changes",
    )
    parser.add_argument(
        "--idle-clients",
        action="store_true",
        help="run the client processes under SCHED_IDLE: in use they are other machines, "
        "here they share the server's cores (their receive times are the kernel's anyway)",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.0,
        metavar="CORES",
        help="before each row, wait (up to 15 min) until the machine used less than CORES "
        "over 5 s (a shared VM: wait out a neighbour's burst); 0: do not wait",
    )
    args = parser.parse_args()
    if args.quick:
        args.sse, args.ws = min(args.sse, 200), min(args.ws, 200)
        args.duration, args.warmup = 8.0, 3.0

    args.sim_interval_ms = args.sim_interval_ms or args.interval_ms
    soft, hard = _raise_fd_limit()
    symbols = [f"SYM{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(args.symbols)]
    print(
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, fd limit {soft}/{hard}; "
        f"{args.symbols} symbols stepped every {args.sim_interval_ms} ms, "
        f"pushed every {args.interval_ms} ms, "
        f"{args.warmup:g} s warm-up + {args.duration:g} s measured, "
        f"{args.client_procs} client processes"
        + (" (SCHED_IDLE)" if args.idle_clients else "")
        + (
            f"; aitrader served by one api replica behind an ingest process "
            f"(MARKET_PUBLISH_MS={args.market_publish_ms}, {args.redis_url})"
            if args.replica
            else ""
        )
    )
    where = " (api replica)" if args.replica else ""
    phases = [
        Phase(f"aitrader SSE{where}", "aitrader_app", "sse", "/api/stream/prices", args.sse),
        Phase(f"aitrader WS{where}", "aitrader_app", "ws", "/ws", args.ws),
    ]
    phases = [replace(p, replica=args.replica) for p in phases if p.clients > 0]
    runs = range(1, args.repeat + 1) if args.repeat > 1 else [0]
    if args.dashboards:
        phases = [
            replace(twin, run=run)
            for phase in phases
            for run in runs
            for twin in (phase, phase.with_dashboards(), phase.with_dashboards(elsewhere=True))
        ]
    else:  # run-major: a slow spell of the machine spreads over the rows, not one row
        phases = [replace(phase, run=run) for run in runs for phase in phases]
    phases.append(Phase("baseline sse-starlette", "baseline_app", "sse", "/prices", args.sse))

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench_fanout_") as tmp:
        workdir = Path(tmp)
        db_url = f"sqlite:///{workdir / 'fanout.db'}"
        engine = make_engine(db_url)
        upgrade(engine)
        engine.dispose()
        env = {
            "DATABASE_URL": db_url,
            "REALTIME_SYMBOLS": json.dumps(symbols),
            "SIM_INTERVAL_MS": str(args.sim_interval_ms),
            "SSE_INTERVAL_MS": str(args.interval_ms),
            "MARKET_DATA_SOURCE": "simulator",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        for phase in phases:
            if phase.clients > 0:
                rows.extend(_measure(phase, args, env, workdir))
    _print_results(rows)


def _measure(
    phase: Phase, args: argparse.Namespace, env: dict[str, str], workdir: Path
) -> list[Row]:
    """One server process; `--rounds` times: connect the clients, measure, disconnect."""
    rows: list[Row] = []
    with (
        _serving(phase, args, env, workdir) as server,
        _other_server(phase, env, workdir) as other,
    ):
        if phase.kind == "ws" and (status := probe_ws(server.port, phase.path)) is not None:
            print(f"\n{phase.label}: skipped, {phase.path} answered HTTP {status}")
            return rows
        time.sleep(1.0)
        rss_idle = _rss_mb(server.pid)
        for k in range(1, args.rounds + 1):
            round_ = k if args.rounds > 1 else 0
            dashboards_at = other or server.port
            row = _measure_round(phase, round_, args, server, rss_idle, dashboards_at)
            rows.append(row)
            rss_idle = row.rss_after_mb
    log = [line for path in server.logs for line in _log_lines(path, len(server.logs) > 1)]
    if rows:
        rows[-1] = replace(rows[-1], server_log=log)
    return rows


def _measure_round(
    phase: Phase,
    round_: int,
    args: argparse.Namespace,
    server: Server,
    rss_idle: float,
    dashboards_at: int,
) -> Row:
    if args.quiet_below > 0:
        _wait_quiet(args.quiet_below)
    load_1m = os.getloadavg()[0]
    title = f"{phase.label} (round {round_})" if round_ else phase.label
    title = f"{title} (run {phase.run})" if phase.run else title
    print(f"\n{title}: {phase.clients} clients, load average {_load()}", flush=True)
    compression = None if args.ws_compression == "none" else args.ws_compression
    with (
        _dashboards(dashboards_at, phase.browsers) as browsers,
        _client_processes(
            phase, server.port, args.client_procs, compression, args.idle_clients
        ) as clients,
    ):
        started = time.monotonic()
        readies = [_receive(conn, READY_TIMEOUT_S, Ready) for _, conn in clients]
        connected = sum(r.connected for r in readies)
        failed = sum(r.failed for r in readies)
        print(
            f"  connected {connected}/{phase.clients} in {time.monotonic() - started:.1f} s"
            + (f", {failed} failed" if failed else "")
        )
        t0 = time.time() + args.warmup
        window = Window(t0, t0 + args.duration)
        for _, conn in clients:
            conn.send(window)
        pids = [proc.pid for proc, _ in clients if proc.pid is not None]
        time.sleep(max(0.0, window.t0 - time.time()))
        server0, clients0, wall0 = _cpu_s(server.pid), [_cpu_s(p) for p in pids], time.time()
        browsers0 = _tree_cpu_s(browsers) if browsers else 0.0
        ingest0, machine0 = _cpu_s(server.ingest) if server.ingest else 0.0, _machine_cpu_s()
        time.sleep(max(0.0, window.t1 - time.time()))
        server1, clients1, wall1 = _cpu_s(server.pid), [_cpu_s(p) for p in pids], time.time()
        browsers1 = _tree_cpu_s(browsers) if browsers else 0.0
        ingest1, machine1 = _cpu_s(server.ingest) if server.ingest else 0.0, _machine_cpu_s()
        rss_loaded = _rss_mb(server.pid)
        results = [_receive(conn, RESULTS_TIMEOUT_S, Received) for _, conn in clients]
    time.sleep(3.0)  # let the server forget the disconnected clients
    rss_after = _rss_mb(server.pid)
    wall = wall1 - wall0
    ours = (
        (server1 - server0)
        + (ingest1 - ingest0)
        + sum(b - a for a, b in zip(clients0, clients1, strict=True))
        + (browsers1 - browsers0)
    )
    row = _summarise(
        phase,
        round_,
        results,
        args,
        load_1m=load_1m,
        server_cpu=100 * (server1 - server0) / wall,
        client_cpu=[100 * (b - a) / wall for a, b in zip(clients0, clients1, strict=True)],
        rss=(rss_idle, rss_loaded, rss_after),
    )
    row = replace(
        row,
        run=phase.run,
        browsers=phase.browsers,
        browser_cpu=100 * (browsers1 - browsers0) / wall,
        ingest_cpu=100 * (ingest1 - ingest0) / wall if server.ingest else math.nan,
        other_cpu=max(0.0, (machine1 - machine0) - ours) / wall,
    )
    print(
        f"  lag p50 {row.lag_ms[0]:.0f} ms, p99 {row.lag_ms[1]:.0f} ms; fan-out p99 "
        f"{row.fanout_ms[1]:.0f} ms; tick age p99 {row.age_ms[1]:.0f} ms; "
        f"server CPU {row.server_cpu:.0f} %"
        + (f", ingest {row.ingest_cpu:.0f} %" if server.ingest else "")
        + f", clients {row.client_cpu:.0f} %, client loop lag p99 {row.loop_lag_ms[0]:.0f} ms"
        + (f"; browsers {row.browser_cpu:.0f} %" if browsers else "")
        + f"; other processes {row.other_cpu:.2f} cores"
    )
    return row


def _summarise(
    phase: Phase,
    round_: int,
    results: list[Received],
    args: argparse.Namespace,
    *,
    load_1m: float,
    server_cpu: float,
    client_cpu: list[float],
    rss: tuple[float, float, float],
) -> Row:
    keys = np.concatenate([np.array(r.keys, dtype=np.int64) for r in results])
    read = np.concatenate([np.array(r.recv, dtype=np.float64) for r in results])
    arrived = np.concatenate([np.array(r.arrived, dtype=np.float64) for r in results])
    tick = np.concatenate([np.array(r.tick, dtype=np.float64) for r in results])
    published = np.concatenate([np.array(r.published, dtype=np.float64) for r in results])
    loop_lag = np.concatenate([np.array(r.loop_lag, dtype=np.float64) for r in results]) * 1000
    known = ~np.isnan(arrived)
    read_delay = (read[known] - arrived[known]) * 1000
    recv = np.where(known, arrived, read)  # the kernel's time when we have it
    connected = sum(r.connected for r in results)
    ids = np.unique(keys[keys >= 0])
    unknown = np.isnan(published) & (keys >= 0)
    if unknown.any():  # publish time = first receipt of the same event id by any client
        _, inverse = np.unique(keys, return_inverse=True)
        first = np.full(inverse.max() + 1, np.inf)
        np.minimum.at(first, inverse, recv)
        published = np.where(unknown, first[inverse], published)
    published = np.where(np.isnan(published), tick, published)
    lag = (recv - tick) * 1000
    fanout = (recv - published) * 1000
    age = (published - tick) * 1000
    expected = int(connected * args.duration * 1000 / args.interval_ms)
    per_client = [n for r in results for n in r.per_client]
    return Row(
        server=phase.label,
        round=round_,
        requested=phase.clients,
        connected=connected,
        load_1m=load_1m,
        events_per_client_s=len(recv) / max(connected, 1) / args.duration,
        lag_ms=(_pct(lag, 50), _pct(lag, 99), _max(lag)),
        fanout_ms=(_pct(fanout, 50), _pct(fanout, 99)),
        age_ms=(_pct(age, 50), _pct(age, 99)),
        read_delay_ms=(_pct(read_delay, 99), _max(read_delay)),
        loop_lag_ms=(_pct(loop_lag, 99), _max(loop_lag)),
        missed=expected - len(recv),
        expected=expected,
        server_cpu=server_cpu,
        client_cpu=sum(client_cpu),
        client_cpu_max=max(client_cpu, default=0.0),
        rss_idle_mb=rss[0],
        rss_loaded_mb=rss[1],
        rss_after_mb=rss[2],
        failed=sum(r.failed for r in results),
        ended=sum(r.ended_in_window for r in results),
        silent_clients=per_client[:connected].count(0) if per_client else 0,
        event_ids=len(ids),
        rows_per_event=sum(r.rows for r in results) / max(len(recv), 1),
        malformed=sum(r.malformed for r in results),
        errors=[e for r in results for e in r.errors][:5],
        server_log=[],
    )


def _print_results(rows: list[Row]) -> None:
    print()
    print(
        "| server | clients | load 1m | events/client/s | lag p50 | lag p99 | lag max "
        "| fan-out p50 | fan-out p99 | missed | server CPU | client CPU (max proc) | RSS/conn |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.label} | {r.connected:,}/{r.requested:,} | {r.load_1m:.2f} "
            f"| {r.events_per_client_s:.2f} | {r.lag_ms[0]:.0f} ms | {r.lag_ms[1]:.0f} ms "
            f"| {r.lag_ms[2]:.0f} ms | {r.fanout_ms[0]:.1f} ms | {r.fanout_ms[1]:.1f} ms "
            f"| {r.missed:,} ({100 * r.missed / max(r.expected, 1):.1f} %) "
            f"| {r.server_cpu:.0f} % | {r.client_cpu:.0f} % ({r.client_cpu_max:.0f} %) "
            f"| {r.rss_per_conn_kb:.1f} KiB |"
        )
    print()
    print(
        "| server | connect failures | streams ended in window | clients with 0 events "
        "| distinct event ids | rows/event | tick age at publish p50 / p99 "
        "| client read delay p99 / max | client loop lag p99 / max "
        "| RSS idle | RSS loaded | RSS after disconnect | ingest CPU | other processes |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ingest = "—" if math.isnan(r.ingest_cpu) else f"{r.ingest_cpu:.0f} %"
        print(
            f"| {r.label} | {r.failed} | {r.ended} | {r.silent_clients} | {r.event_ids:,} "
            f"| {r.rows_per_event:.1f} | {_ms(r.age_ms)} | {_ms(r.read_delay_ms)} "
            f"| {_ms(r.loop_lag_ms)} "
            f"| {r.rss_idle_mb:.1f} MiB | {r.rss_loaded_mb:.1f} MiB | {r.rss_after_mb:.1f} MiB "
            f"| {ingest} | {r.other_cpu:.2f} cores |"
        )
    baselines = {r.round: r for r in rows if r.server.startswith("baseline")}
    print()
    plain = {(r.server, r.round, r.run): r for r in rows}
    pairs: list[tuple[Row, Row]] = []
    for r in rows:  # the page's connections alone: the dashboards here / watching elsewhere
        control = plain.get((f"{r.server} on another server", r.round, r.run))
        if control is not None:
            pairs.append((r, control))
    for r in rows:
        base = plain.get((r.server.split(" + ")[0], r.round, r.run))
        if " + " in r.server and base is not None:
            pairs.append((r, base))
    for row, base in pairs:
        print(_compared(row, base))
    if any(r.run for r in rows):
        print()
        print(_medians(pairs))
    for r in rows:
        base = baselines.get(r.round)
        if base is None or r is base:
            continue
        print(_compared(r, base))
    for r in rows:
        for line in r.errors:
            print(f"{r.label} client error: {line}")
        if r.malformed:
            print(f"{r.label}: {r.malformed} events without a parseable ts")
        for line in r.server_log[:10]:
            print(f"{r.label} server log: {line}")
        if len(r.server_log) > 10:
            print(f"{r.label} server log: ... {len(r.server_log) - 10} more lines")


def _compared(row: Row, base: Row) -> str:
    """`row` against `base`: lag and fan-out p99 and server CPU, each as a ratio."""
    return (
        f"{row.label} / {base.label}: "
        f"lag p99 {_ratio(row.lag_ms[1], base.lag_ms[1], 'ms')}, "
        f"fan-out p99 {_ratio(row.fanout_ms[1], base.fanout_ms[1], 'ms')}, "
        f"server CPU {_ratio(row.server_cpu, base.server_cpu, '%')}"
        + (f"; the browsers took {row.browser_cpu:.0f} % of a core" if row.browsers else "")
    )


def _medians(pairs: list[tuple[Row, Row]]) -> str:
    """For each kind of comparison, the median over the runs of each ratio, and its range."""
    kinds: dict[tuple[str, str], list[tuple[Row, Row]]] = {}
    for row, base in pairs:
        kinds.setdefault((row.server, base.server), []).append((row, base))
    lines = []
    for (ours, theirs), runs in kinds.items():
        figures = []
        for name, field in (("lag p99", 0), ("fan-out p99", 1), ("server CPU", 2)):
            ratios = sorted(_ratio_of(row, base, field) for row, base in runs)
            figures.append(
                f"{name} {float(np.median(ratios)):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"
            )
        cpu = float(np.median([row.browser_cpu for row, _ in runs]))
        lines.append(
            f"median of {len(runs)} runs, {ours} / {theirs}: "
            + ", ".join(figures)
            + (f"; the browsers took {cpu:.0f} % of a core" if runs[0][0].browsers else "")
        )
    return "\n".join(lines)


def _ratio_of(row: Row, base: Row, field: int) -> float:
    """Lag p99 (0), fan-out p99 (1) or server CPU (2) of `row` over `base`'s."""
    ours, theirs = ((r.lag_ms[1], r.fanout_ms[1], r.server_cpu)[field] for r in (row, base))
    return ours / theirs if theirs else math.inf


def _ratio(ours: float, base: float, unit: str) -> str:
    return f"{ours:.1f} / {base:.1f} {unit} = {ours / base if base else math.inf:.2f}x"


def _ms(pair: tuple[float, float]) -> str:
    return "—" if math.isnan(pair[0]) else f"{pair[0]:.0f} / {pair[1]:.0f} ms"


# --- processes ------------------------------------------------------------------------


@contextmanager
def _serving(
    phase: Phase, args: argparse.Namespace, env: dict[str, str], workdir: Path
) -> Iterator[Server]:
    """The server a phase measures: the embedded app, or an api replica (--replica)."""
    if phase.replica:
        with _replica(args.redis_url, {**_replica_env(args), **env}, workdir) as served:
            yield served
        return
    with _server(phase.factory, env, workdir) as (server, port, log):
        yield Server(server.pid, port, (log,))


@contextmanager
def _replica(redis_url: str, env: dict[str, str], workdir: Path) -> Iterator[Server]:
    """One ingest process and one api replica (`aitrader serve`, tests/replica_stack.py)
    on an emptied Redis database: the market streams have fixed names, and a previous
    run's entries would be caught up on. Yields once the replica serves every symbol."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    stack_dir = Path(tempfile.mkdtemp(prefix="stack-", dir=workdir))
    with replica_stack(env["DATABASE_URL"], redis_url, stack_dir, extra=env) as stack:
        ingest = stack.start("ingest", "ingest")
        api = stack.start("api", "api")
        _wait_prices(api.port, len(json.loads(env["REALTIME_SYMBOLS"])))
        yield Server(api.process.pid, api.port, (api.log, ingest.log), ingest=ingest.process.pid)


def _replica_env(args: argparse.Namespace) -> dict[str, str]:
    """What only the replica stack reads."""
    return {
        "MARKET_PUBLISH_MS": str(args.market_publish_ms),
        "COLUMNS": "1000",  # `aitrader serve`'s banner on one line, which _log_lines drops
    }


@contextmanager
def _server(
    factory: str, env: dict[str, str], workdir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A uvicorn process serving `fanout:<factory>` on a free loopback port; killed on exit."""
    port = _free_port()
    log_path = workdir / f"{factory}-{port}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"fanout:{factory}",
                "--app-dir",
                str(BENCH),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backlog",
                "4096",
                "--log-level",
                "warning",
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "5",
            ],
            env=env,
            cwd=workdir,  # no .env from the project tree
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(server, port)
            yield server, port, log_path
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


@contextmanager
def _other_server(phase: Phase, env: dict[str, str], workdir: Path) -> Iterator[int | None]:
    """For a control row, a second app for the dashboards to watch: the browsers' CPU on the
    machine as in the dashboards row, none of their connections on the measured server."""
    if not phase.elsewhere:
        yield None
        return
    with _server("aitrader_app", env, workdir) as (_, port, _log):
        yield port


def _idle_priority() -> None:
    """SCHED_IDLE for this process and every one it starts: run only when a core is free."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


@contextmanager
def _dashboards(port: int, count: int) -> Iterator[int | None]:
    """`count` Chromium browsers with the dashboard open (bench/_dashboard_browsers.py),
    every feed live before the clients connect; yields the pid whose process tree holds
    them (None without browsers); on exit, says whether they stayed live."""
    if count == 0:
        yield None
        return
    # SCHED_IDLE: in use the browsers run on the traders' machines, not beside the server;
    # here they share its 2 cores, and drawing 2 frames/s in 4 browsers would otherwise
    # take CPU time from the server and the bench clients and be measured as their lag.
    browsers = subprocess.Popen(
        [sys.executable, str(BENCH / "_dashboard_browsers.py"), str(port), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_idle_priority,
    )
    assert browsers.stdin is not None
    assert browsers.stdout is not None
    try:
        if (line := browsers.stdout.readline().strip()) != "ready":
            raise RuntimeError(f"the dashboards did not open: {line or browsers.wait()}")
        print(f"  {count} dashboards open (SCHED_IDLE), their price and signal feeds live")
        yield browsers.pid
        browsers.stdin.close()
        print(f"  dashboards at the end: {browsers.stdout.readline().strip()} feeds live")
    finally:
        try:
            browsers.wait(timeout=30)
        except subprocess.TimeoutExpired:
            browsers.kill()
            browsers.wait()


@contextmanager
def _client_processes(
    phase: Phase, port: int, procs: int, compression: str | None, idle: bool
) -> Iterator[list[tuple[SpawnProcess, Connection]]]:
    """`procs` spawned client processes sharing `phase.clients` (under SCHED_IDLE if
    `idle`); joined or killed on exit."""
    ctx = multiprocessing.get_context("spawn")
    started: list[tuple[SpawnProcess, Connection]] = []
    try:
        for i in range(procs):
            count = phase.clients // procs + (1 if i < phase.clients % procs else 0)
            if count == 0:
                continue
            parent, child = ctx.Pipe()
            job = ClientJob(phase.kind, port, phase.path, count, compression, idle)
            proc = ctx.Process(target=run_clients, args=(job, child), daemon=True)
            proc.start()
            child.close()
            started.append((proc, parent))
        yield started
    finally:
        for proc, conn in started:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            conn.close()


def _receive(conn: Connection, timeout: float, kind: type[T]) -> T:
    if not conn.poll(timeout):
        raise RuntimeError(f"client process sent no {kind.__name__} within {timeout:.0f} s")
    message = conn.recv()
    if not isinstance(message, kind):
        raise RuntimeError(f"client process sent {type(message).__name__}, not {kind.__name__}")
    return message


def _wait_healthy(server: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not healthy within {timeout:.0f} s")


def _wait_prices(port: int, symbols: int, timeout: float = 60.0) -> None:
    """Until the server's REST prices hold all `symbols` (a replica has caught up)."""
    deadline = time.monotonic() + timeout
    held = 0
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/api/market/prices")
            response = conn.getresponse()
            if response.status == 200 and (held := len(json.loads(response.read()))) >= symbols:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} held {held} of {symbols} prices after {timeout} s")


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raise_fd_limit() -> tuple[int, int]:
    """Soft fd limit up to the hard one; children (servers, clients) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft, hard


def _cpu_s(pid: int) -> float:
    """utime + stime of `pid` in seconds, from /proc (psutil is not a dependency)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _tree_cpu_s(root: int) -> float:
    """utime + stime of `root` and every live process under it (Chromium's renderers, GPU
    and network processes, Playwright's driver), in seconds."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we listed
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    total = 0.0
    for pid in parent:
        up = pid
        while up > 1 and up != root:
            up = parent.get(up, 0)
        if up == root:
            try:
                total += _cpu_s(pid)
            except OSError:
                continue
    return total


def _wait_quiet(below: float, timeout_s: float = QUIET_TIMEOUT_S) -> None:
    """Until the whole machine (the idle server included) used less than `below` cores
    over 5 s; gives up after `timeout_s` and says so. What neighbours still use during the
    window is measured anyway (other CPU)."""
    started = time.monotonic()
    while True:
        before = _machine_cpu_s()
        time.sleep(QUIET_SAMPLE_S)
        busy = (_machine_cpu_s() - before) / QUIET_SAMPLE_S
        waited = time.monotonic() - started
        if busy < below:
            if waited > QUIET_SAMPLE_S:
                print(f"  waited {waited:.0f} s for a quiet machine ({busy:.2f} cores busy)")
            return
        if waited > timeout_s:
            print(f"  the machine stayed busy ({busy:.2f} cores) for {waited:.0f} s: measuring")
            return


def _machine_cpu_s() -> float:
    """Busy time of every core (user, nice, system), in seconds, from /proc/stat."""
    user, nice, system = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]
    return (int(user) + int(nice) + int(system)) / CLK_TCK


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _log_lines(path: Path, named: bool = False) -> list[str]:
    """The log's lines (prefixed with its file's name if `named`), less `aitrader serve`'s
    banner."""
    lines = path.read_text(errors="replace").splitlines()
    prefix = f"{path.stem}: " if named else ""
    return [prefix + line for line in lines if line.strip() and not line.startswith("AITrader ")]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else math.nan


def _max(values: np.ndarray) -> float:
    return float(values.max()) if values.size else math.nan


if __name__ == "__main__":
    main()
