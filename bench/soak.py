"""Soak: the scale-out topology under steady load for a set time, judged on growth.

On loopback (tests/replica_stack.py): one `REALTIME_ROLE=ingest` process (GBM
simulator stepping the bundled sample's 30 symbols every `--sim-interval-ms`,
100 ms as in the replica tests; pattern and strategy engines; books), two
`REALTIME_ROLE=api` replicas, a private redis-server, and Postgres (a database of
its own, dropped at the end; `--sqlite` for a file). Beside them:

* 500 SSE and 500 WS price clients (`--sse`, `--ws`), half on each replica, held by
  two client processes (bench/_soak_clients.py); a stream that drops is counted
  and reopened;
* a chat trade every `--chat-every` s ("buy 1 AAPL", then "sell 1 AAPL"; executed
  on the paper broker), alternating replicas, with Idempotency-Key retries;
* a council job every `--council-every` s (`POST /api/jobs`, offline analyst,
  approval auto, executing; a different week each time), alternating replicas,
  run by the replica's process job runner (which starts a local Prefect server
  of its own with its first job).

Warm-up (not judged, but sampled and written out): the clients connect, chat turns
reach both replicas, one council runs to its end on each replica (first imports,
the Prefect servers), and at least `--warmup` s pass (300 s: by then the market
streams hold several minutes of entries; they grow until the bus's 10,000-entry
cap, which Redis's RSS shows). Then the steady window of `--minutes` (30), sampled
every `--sample-s` (30 s). `--ci`: 2 minutes, 30 s warm-up, a sample every 10 s,
a council a minute. Each sample: RSS and CPU of every process (ingest, replicas,
each replica's Prefect server, redis-server, the client processes; each
replica's job processes and Prefect server also summed as its children), stream
lag (each replica's `aitrader_market_stream_lag_seconds`, scraped every second),
tick-to-client lag over the interval (SSE: kernel receive time - newest tick `ts`
in the event; WS: the client loop's receive time), chat latency, job statuses
and errors. After the window the clients stop and the councils still running are
waited for (`--job-timeout`).

The run FAILS (exit 1, one line saying why) when:

* a process's RSS grew from the first steady sample to the last by more than
  max(30 MB, 15 % of the first);
* a replica's stream lag p99 (its 1-s scrapes pooled over the steady window) is
  over 0.5 s, or rising: the median of the last third of the per-interval p99s
  exceeds the first third's by more than max(100 ms, 50 %);
* tick-to-client p99 (all steady events pooled), SSE or WS, is over 1.0 s, or
  rising (as above, by more than max(250 ms, 50 %));
* at any time, warm-up included: any 5xx (seen by the drivers, or counted in a
  server's /metrics), any failed request (no answer within 30 s or after the
  retries, or a final non-2xx), any client disconnect or failed connect, any
  unreadable market message, any process that died, or any council job that did
  not complete.

Trends need 6 steady samples (fewer: not judged, and said so). Not judged, but
noted: ERROR lines in the logs, processes left running after the stack stopped,
the warm-up's worst lag, Redis's largest keys.

Writes `soak.csv` (one row per sample), `soak.json` (samples, checks, settings)
and `summary.md` (the tables, pasteable into bench/README.md) to `--out`, next to
every process's log; prints the same tables. Bounds: bench/_soak_judge.py Bounds.

Usage: python bench/soak.py [--minutes 30] [--ci] [--sqlite] [--sse 500] [--ws 500]
                            [--sample-s 30] [--council-every 300] [--chat-every 3]
                            [--warmup 300] [--job-timeout 900] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import signal
import sys
import time
import traceback
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `tests` (the replica stack, the load client) is not installed

from _soak_clients import Ready, Report  # noqa: E402
from _soak_judge import (  # noqa: E402
    Bounds,
    Check,
    LagHistogram,
    Sample,
    Totals,
    checks_table,
    failure_line,
    judge,
    process_table,
)
from _soak_load import ChatTrader, Councils, clients_for  # noqa: E402
from _soak_probe import (  # noqa: E402
    MetricsScraper,
    cmdline,
    cpu_s,
    descendants,
    redis_keys,
    redis_used_mb,
    rss_mb,
)
from _soak_setup import (  # noqa: E402
    ClientProcess,
    client_processes,
    database,
    prepare,
    private_redis,
    raise_fd_limit,
    stack_environment,
)
from redis import Redis  # noqa: E402

from tests.replica_stack import replica_stack  # noqa: E402
from tests.stack_load import FINAL, LoadReport  # noqa: E402

REPLICAS = ("api-1", "api-2")
REPORT_TIMEOUT_S = 60.0


def main() -> int:
    # A plain `kill` must stop the stack too: its processes run in their own sessions, so
    # only the context managers' exits (run by SystemExit, not by the default SIGTERM) end them.
    signal.signal(signal.SIGTERM, _terminated)
    args = _arguments()
    out = args.out or Path(f"/tmp/aitrader-soak-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    raise_fd_limit()
    print(
        f"soak: {args.minutes:g} min steady after warm-up, {args.sse} SSE + {args.ws} WS "
        f"clients, chat every {args.chat_every:g} s, council every {args.council_every:g} s, "
        f"sampled every {args.sample_s:g} s; {'SQLite' if args.sqlite else 'Postgres'}; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load {_load()}; "
        f"output in {out}",
        flush=True,
    )
    run = Run(args, Bounds(), out)
    try:
        run.execute()
    except Exception as exc:  # the process's edge: the traceback, then the one line
        traceback.print_exc()
        print(f"\nFAIL: the soak could not run: {type(exc).__name__}: {exc}"[:400])
        return 2
    finally:
        run.write_csv()
    checks = judge(run.samples, run.totals, run.bounds)
    tables = run.tables(checks)
    (out / "summary.md").write_text(tables + "\n")
    run.write_json(checks)
    print("\n" + tables)
    verdict = failure_line(checks)
    print(f"\n{verdict or 'PASS'}  ({out})")
    return 1 if verdict else 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="steady window")
    parser.add_argument("--ci", action="store_true", help="2 minutes, 10 s samples, councils 60 s")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file, not Postgres")
    parser.add_argument("--sse", type=int, default=500, help="SSE clients, half per replica")
    parser.add_argument("--ws", type=int, default=500, help="WS clients, half per replica")
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--council-every", type=float, default=300.0)
    parser.add_argument("--chat-every", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=300.0, help="at least this long")
    parser.add_argument("--job-timeout", type=float, default=900.0, help="per council job")
    parser.add_argument("--sim-interval-ms", type=int, default=100, help="simulator step")
    parser.add_argument("--out", type=Path, default=None, help="default /tmp/aitrader-soak-*")
    args = parser.parse_args()
    if args.ci:
        args.minutes, args.sample_s, args.council_every, args.warmup = 2.0, 10.0, 60.0, 30.0
    return args


@dataclass
class Probes:
    """What a sample reads: the processes by label, the client pipes, the scraper, Redis."""

    pids: dict[str, int]
    clients: list[ClientProcess]
    scraper: MetricsScraper
    redis: Redis
    chat: ChatTrader
    councils: Councils


@dataclass
class Run:
    """One soak: the stack, the clients, the drivers, and what was sampled."""

    args: argparse.Namespace
    bounds: Bounds
    out: Path
    samples: list[Sample] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    notes: list[str] = field(default_factory=list)
    report: LoadReport = field(default_factory=lambda: LoadReport("soak"))
    _ticks: dict[str, LagHistogram] = field(
        default_factory=lambda: {"sse": LagHistogram(), "ws": LagHistogram()}
    )
    _stream_lags: dict[str, list[float]] = field(default_factory=dict)
    _cpu: dict[int, float] = field(default_factory=dict)
    _streams_lost = 0  # client disconnects, cumulative
    _connects_failed = 0
    _children: set[int] = field(default_factory=set)  # every job / Prefect process seen
    _dead: set[str] = field(default_factory=set)
    _started = 0.0

    def execute(self) -> None:
        args = self.args
        with (
            database(args.sqlite, self.out) as url,
            private_redis() as redis,
            replica_stack(
                url, redis.url, self.out, stack_environment(args.sim_interval_ms, self.out)
            ) as stack,
        ):
            token, weeks = prepare(url)
            began = time.monotonic()
            pids = {"ingest": stack.start("ingest", "ingest").process.pid}
            replicas = {name: stack.start(name, "api") for name in REPLICAS}
            print(f"stack ready in {time.monotonic() - began:.0f} s", flush=True)
            bases = {"ingest": stack.processes["ingest"].base}
            bases |= {name: s.base for name, s in replicas.items()}
            drivers = clients_for({n: s.base for n, s in replicas.items()}, token, self.report)
            assert redis._process is not None  # PrivateRedis keeps its pid to itself
            pids |= {name: s.process.pid for name, s in replicas.items()}
            pids["redis-server"] = redis._process.pid
            with client_processes(replicas, args.sse, args.ws) as clients:
                for (process, _), name in zip(clients, replicas, strict=True):
                    pids[f"clients -> {name}"] = process.pid or 0
                probes = Probes(
                    pids,
                    clients,
                    MetricsScraper(bases),
                    Redis.from_url(redis.url),
                    ChatTrader(drivers, args.chat_every),
                    Councils(drivers),
                )
                self._drive(probes, iter(weeks))
            self._drain(probes.councils)
            self._record_drivers(probes)
        self._orphans()
        self._log_errors()

    def _drive(self, probes: Probes, weeks: Iterator[date]) -> None:
        """Connect, warm up, then the steady window with councils on schedule; stop."""
        args = self.args
        self._started = time.monotonic()
        self._ready(probes.clients)
        probes.scraper.start()
        probes.chat.start()
        warm = [probes.councils.start(name, next(weeks)) for name in REPLICAS]
        self._warm_up(probes, warm)
        steady_at = time.monotonic()
        end = steady_at + args.minutes * 60
        next_council, turn = steady_at, 0
        next_sample = steady_at + args.sample_s
        while not self._dead:
            if time.monotonic() >= next_council and next_council < end:
                probes.councils.start(REPLICAS[turn % len(REPLICAS)], next(weeks))
                turn += 1
                next_council += args.council_every
            if time.monotonic() >= next_sample:
                self._sample("steady", probes)
                if next_sample >= end:
                    break
                next_sample = min(next_sample + args.sample_s, end)
            time.sleep(max(0.0, min(next_sample, next_council) - time.monotonic()))
        probes.chat.stop()
        self.notes.append(redis_keys(probes.redis))
        self._stop_clients(probes.clients)
        probes.scraper.stop()

    def _ready(self, clients: list[ClientProcess]) -> None:
        for _, conn in clients:
            if not conn.poll(REPORT_TIMEOUT_S * 3):
                raise RuntimeError("a client process did not report its connections")
            ready: Ready = conn.recv()
            errors = f" ({'; '.join(ready.errors)})" if ready.errors else ""
            print(
                f"clients on {ready.replica}: {ready.connected} connected, "
                f"{ready.failed} failed{errors}",
                flush=True,
            )

    def _warm_up(self, probes: Probes, warm: list[int | None]) -> None:
        """Until `--warmup` s passed, both first councils ended and chat reached both."""
        args = self.args
        deadline = time.monotonic() + args.warmup + args.job_timeout
        while not self._dead:
            time.sleep(args.sample_s)
            self._sample("warmup", probes)
            statuses = probes.councils.statuses()
            waited = time.monotonic() - self._started
            done = all(j is None or statuses.get(j) in FINAL for j in warm)  # None: refused
            chatted = all(probes.chat.stats.ok[name] for name in REPLICAS)
            if (waited >= args.warmup and done and chatted) or time.monotonic() > deadline:
                break
        worst = max(self.samples, key=lambda s: max(s.tick_max_s.values(), default=0.0))
        self.notes.append(
            f"warm-up: {waited:.0f} s; its worst tick-to-client lag "
            f"{max(worst.tick_max_s.values(), default=math.nan):.1f} s (interval ending at "
            f"{worst.t_s:.0f} s; chat p99 then {worst.chat_p99_s:.1f} s)"
        )
        print(self.notes[-1], flush=True)

    def _sample(self, phase: str, probes: Probes) -> None:
        now = time.monotonic() - self._started
        previous = self.samples[-1].t_s if self.samples else 0.0
        sample = Sample(t_s=now, phase=phase, interval_s=now - previous)
        self._read_processes(sample, probes.pids)
        sample.redis_used_mb = redis_used_mb(probes.redis)
        self._read_clients(sample, probes.clients)
        scrape_failures = self._read_metrics(sample, probes.scraper)
        probes.councils.poll()
        statuses = list(probes.councils.statuses().values())
        sample.jobs = {s: statuses.count(s) for s in sorted(set(statuses))}
        latencies = probes.chat.take_latencies()
        sample.chat_ok = sum(probes.chat.stats.ok.values())
        sample.chat_p99_s = float(np.percentile(latencies, 99)) if latencies else math.nan
        sample.http_5xx = len(self.report.server_errors)
        sample.failed_requests = (
            len(self.report.client_failures)
            + probes.chat.stats.failed
            + probes.councils.failed
            + scrape_failures
        )
        self.samples.append(sample)
        _progress(sample)

    def _read_processes(self, sample: Sample, pids: dict[str, int]) -> None:
        """RSS and CPU of each process; each replica's descendants summed, its Prefect
        server (started with its first job) also on its own."""
        labelled = dict(pids)
        for name in REPLICAS:
            children = descendants(pids[name])
            self._children.update(children)
            sample.children_rss_mb[name] = sum(rss_mb(pid) or 0.0 for pid in children)
            sample.children[name] = len(children)
            for pid in children:
                if "prefect server start" in cmdline(pid):
                    labelled[f"prefect server ({name})"] = pid
        for label, pid in labelled.items():
            rss, cpu = rss_mb(pid), cpu_s(pid)
            if rss is None or cpu is None:
                if label in pids and label not in self._dead:
                    self._dead.add(label)
                    self.totals.dead.append(f"{label} (pid {pid}) exited")
                continue
            sample.rss_mb[label] = rss
            before = self._cpu.get(pid)
            busy = math.nan if before is None else (cpu - before) / sample.interval_s * 100
            sample.cpu_pct[label] = busy
            self._cpu[pid] = cpu

    def _read_clients(self, sample: Sample, clients: list[ClientProcess]) -> None:
        reports: list[Report] = []
        for _, conn in clients:
            conn.send("report")
        for process, conn in clients:
            if conn.poll(REPORT_TIMEOUT_S):
                reports.append(conn.recv())
            elif f"client {process.pid}" not in self._dead:
                self._dead.add(f"client {process.pid}")
                self.totals.dead.append(f"client process {process.pid} did not report")
        for report in reports:
            self._streams_lost += report.disconnects
            self._connects_failed += report.connect_failures
            self.notes += [f"clients -> {report.replica}: {e}" for e in report.errors]
        sample.disconnects = self._streams_lost
        sample.connect_failures = self._connects_failed
        sample.silent = sum(r.silent for r in reports)
        sample.client_loop_lag_p99_s = _pct(_joined([r.loop_lag for r in reports]), 99)
        for kind in ("sse", "ws"):
            lags = _joined([r.lag[kind] for r in reports])
            sample.events[kind] = int(lags.size)
            sample.connected[kind] = sum(r.connected[kind] for r in reports)
            sample.tick_p50_s[kind] = _pct(lags, 50)
            sample.tick_p99_s[kind] = _pct(lags, 99)
            sample.tick_max_s[kind] = float(lags.max()) if lags.size else math.nan
            if sample.phase == "steady":
                self._ticks[kind].add(lags)
                self.totals.tick_p99_s[kind] = self._ticks[kind].quantile(0.99)

    def _read_metrics(self, sample: Sample, scraper: MetricsScraper) -> int:
        """Stream lags and the servers' counters into `sample`; how many scrapes failed."""
        scraped = scraper.take()
        for name in REPLICAS:
            lags = np.asarray(scraped[name].lags)
            sample.stream_lag_p99_s[name] = _pct(lags, 99)
            sample.stream_lag_max_s[name] = float(lags.max()) if lags.size else math.nan
            if sample.phase == "steady":
                pooled = self._stream_lags.setdefault(name, [])
                pooled += lags.tolist()
                self.totals.stream_lag_p99_s[name] = _pct(np.asarray(pooled), 99)
        sample.server_5xx = sum(s.server_5xx for s in scraped.values())
        sample.unreadable = sum(s.unreadable for s in scraped.values())
        sample.ws_dropped = sum(s.ws_dropped for s in scraped.values())
        for name, state in scraped.items():
            note = f"/metrics of {name}: {state.last_failure}"
            if state.failures and note not in self.notes:
                self.notes.append(note)
        return sum(s.failures for s in scraped.values())

    def _stop_clients(self, clients: list[ClientProcess]) -> None:
        for _, conn in clients:
            conn.send("stop")
        lost = sum(conn.recv().disconnects for _, conn in clients if conn.poll(REPORT_TIMEOUT_S))
        if lost:
            self.notes.append(f"{lost} disconnects after the last sample")

    def _drain(self, councils: Councils) -> None:
        """Wait for the councils still running (each may take `--job-timeout`)."""
        deadline = time.monotonic() + self.args.job_timeout
        while councils.unfinished() and time.monotonic() < deadline:
            time.sleep(5)
            councils.poll()
        if councils.unfinished():
            self.notes.append(f"jobs unfinished after the drain: {councils.unfinished()}")

    def _record_drivers(self, probes: Probes) -> None:
        councils, chat = probes.councils, probes.chat
        self.totals.jobs = councils.statuses()
        self.totals.job_errors = {
            i: str(body.get("error") or "") for i, (_, _, body) in councils.jobs.items()
        }
        weeks = {i: f"{replica} {as_of}" for i, (replica, as_of, _) in councils.jobs.items()}
        self.notes.append(f"council jobs: {weeks} -> {self.totals.jobs}")
        self.notes += chat.stats.errors + councils.errors + self.report.client_failures
        self.notes += self.report.server_errors[:10]
        self.notes.append(
            f"chat turns: {sum(chat.stats.ok.values())} ok ({dict(chat.stats.ok)}), "
            f"{chat.stats.failed} failed; trades by status: {dict(chat.stats.trades)}"
        )
        self.notes += [f"trade not filled: {line}" for line in chat.stats.unfilled]

    def _orphans(self) -> None:
        """Job processes or Prefect servers still running after their replica stopped:
        noted (an app finding), then ended by pid (this run started them)."""
        for pid in sorted(self._children):
            if rss_mb(pid) is None:
                continue
            self.notes.append(f"left running after its replica stopped: {pid} {cmdline(pid)[:120]}")
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                continue

    def _log_errors(self) -> None:
        """ERROR/CRITICAL log lines and tracebacks in every process's log (noted, not judged)."""
        logs = sorted(self.out.glob("*.log")) + sorted((self.out / "jobs").glob("*.log"))
        for path in logs:
            errors = [
                line
                for line in path.read_text(errors="replace").splitlines()
                if '"level": "error"' in line
                or '"level": "critical"' in line
                or line.startswith("Traceback")
            ]
            if errors:
                first = errors[0][:300]
                self.notes.append(f"{path.name}: {len(errors)} error lines, first: {first}")

    # --- output ------------------------------------------------------------------------

    def write_csv(self) -> None:
        rows = [s.flat() for s in self.samples]
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        with (self.out / "soak.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def write_json(self, checks: list[Check]) -> None:
        body = {
            "args": {k: str(v) for k, v in vars(self.args).items()},
            "bounds": asdict(self.bounds),
            "samples": [asdict(s) for s in self.samples],
            "totals": asdict(self.totals),
            "checks": [asdict(c) for c in checks],
            "notes": self.notes,
            "verdict": failure_line(checks) or "PASS",
        }
        (self.out / "soak.json").write_text(json.dumps(body, indent=1, default=str))

    def tables(self, checks: list[Check]) -> str:
        args = self.args
        steady = [s for s in self.samples if s.phase == "steady"]
        header = (
            f"Soak of {time.strftime('%Y-%m-%d')}: {len(steady)} samples over "
            f"{args.minutes:g} min steady after warm-up, {args.sse} SSE + {args.ws} WS "
            f"clients, a chat trade every {args.chat_every:g} s, a council every "
            f"{args.council_every:g} s, {'SQLite' if args.sqlite else 'Postgres'}, "
            f"{os.cpu_count()} cores, load average at the end {_load()}."
        )
        notes = "\n".join(f"* {n}" for n in self.notes) or "* none"
        return "\n\n".join(
            [header, process_table(self.samples), checks_table(checks), "Notes:\n\n" + notes]
        )


def _progress(s: Sample) -> None:
    rss = " ".join(f"{k}={v:.0f}" for k, v in s.rss_mb.items() if not k.startswith("clients"))
    lag = " ".join(f"{k}={v * 1000:.0f}" for k, v in s.stream_lag_p99_s.items())
    tick = " ".join(f"{k}={v * 1000:.0f}" for k, v in s.tick_p99_s.items())
    print(
        f"[{s.t_s:6.0f} s {s.phase}] RSS MB {rss} | stream lag p99 ms {lag} | tick p99 ms {tick}"
        f" | events {sum(s.events.values())} conn {sum(s.connected.values())}"
        f" silent {s.silent} | disc {s.disconnects} 5xx {s.http_5xx}/{s.server_5xx}"
        f" failed {s.failed_requests} | jobs {s.jobs} | chat {s.chat_ok} | load {_load()}",
        flush=True,
    )


def _joined(arrays: list[array[float]]) -> np.ndarray:
    return np.concatenate([np.frombuffer(a) for a in arrays]) if arrays else np.zeros(0)


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else math.nan


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
