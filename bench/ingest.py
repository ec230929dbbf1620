"""Benchmark: ticks per second one ingest process takes, against the embedded process.

Sizing for docs/deploy.md: how far one `REALTIME_ROLE=ingest` process goes
before it falls behind. Each row is a real `aitrader serve` on loopback (its
own process, SQLite, a private Redis database) with the GBM simulator stepping
`--symbols` symbols every `--interval-ms`, the pattern and strategy engines
and the simulated books on. The simulator restarts its schedule when a step
overruns, so the ticks it manages are the capacity: offered = symbols x steps
per second, taken = the rise of `aitrader_ticks_processed_total` over the
window. Rows, in the same run:

* baseline `all`: the embedded process, nobody to publish to;
* `ingest`: the same, publishing changed prices and books every
  `MARKET_PUBLISH_MS` on Redis, with one `api` replica following it (its
  `aitrader_market_stream_lag_seconds` sampled through the window).

The ratio is ingest's ticks/s over the baseline's: the publisher's cost.

Usage: python bench/ingest.py [--symbols 400] [--interval-ms 10] [--duration 20]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.replica_stack import Served, replica_stack

REDIS_DB = 12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=400)
    parser.add_argument("--interval-ms", type=int, default=10)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    symbols = [f"S{i:04d}" for i in range(args.symbols)]
    offered = args.symbols * 1000 / args.interval_ms
    rows = [_row("all", symbols, args), _row("ingest", symbols, args)]
    print(f"\n{args.symbols} symbols every {args.interval_ms} ms: {offered:,.0f} ticks/s offered")
    print("| process | ticks/s taken | of offered | CPU | RSS | replica stream lag p50 / max |")
    print("|---|---:|---:|---:|---:|---:|")
    for role, taken, cpu, rss, lags in rows:
        lag = f"{_pct(lags, 50) * 1000:.0f} / {max(lags) * 1000:.0f} ms" if lags else "-"
        print(
            f"| {role} | {taken:,.0f} | {taken / offered:.0%} | {cpu:.0%} | {rss:.0f} MiB | {lag} |"
        )
    base, ours = rows[0][1], rows[1][1]
    print(f"\ningest / all ticks per second: {ours / base:.2f}x")


def _row(
    role: str, symbols: list[str], args: argparse.Namespace
) -> tuple[str, float, float, float, list[float]]:
    client = redis.Redis(db=REDIS_DB)
    client.flushdb()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'db.sqlite'}"
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run(
            [sys.executable, "-m", "cli.main", "db", "upgrade"],
            env=env,
            check=True,
            capture_output=True,
        )
        extra = {
            "REALTIME_SYMBOLS": '["' + '","'.join(symbols) + '"]',
            "SIM_INTERVAL_MS": str(args.interval_ms),
            "GC_FULL_EVERY_S": "600",
        }
        with replica_stack(url, f"redis://127.0.0.1:6379/{REDIS_DB}", workdir, extra) as stack:
            served = stack.start(role, role)
            replica = stack.start("api", "api") if role == "ingest" else None
            time.sleep(args.warmup)
            ticks0, cpu0, t0 = _ticks(served), _cpu_s(served), time.monotonic()
            lags: list[float] = []
            while time.monotonic() - t0 < args.duration:
                time.sleep(0.5)
                if replica is not None:
                    lags.append(_gauge(replica, "aitrader_market_stream_lag_seconds"))
            ticks1, cpu1, t1 = _ticks(served), _cpu_s(served), time.monotonic()
            rss = _rss_mib(served)
    client.flushdb()
    return role, (ticks1 - ticks0) / (t1 - t0), (cpu1 - cpu0) / (t1 - t0), rss, lags


def _metrics(served: Served) -> str:
    return httpx.get(f"{served.base}/metrics", timeout=10).text


def _ticks(served: Served) -> float:
    return _gauge(served, "aitrader_ticks_processed_total")


def _gauge(served: Served, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+-]+)$", _metrics(served), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _cpu_s(served: Served) -> float:
    fields = Path(f"/proc/{served.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(served: Served) -> float:
    for line in Path(f"/proc/{served.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


if __name__ == "__main__":
    main()
