"""How long `aitrader` takes to answer, and what the idle realtime server holds in memory.

    .venv/bin/python bench/cli_startup.py            # 7 runs of each command
    .venv/bin/python bench/cli_startup.py --runs 15 --no-server

Each command runs as a whole process, the way a user's shell runs it; the
table gives the median and the best wall time and the peak RSS. Baselines in
the same run: `python -c pass` (the floor any Python command pays) and
`prefect --help` (the orchestrator we sit on). The issue's bar is 0.5 s for
every `--help` and for a refusal of bad input.

The server line starts `aitrader serve` on the embedded settings in a scratch
directory, waits for /health, lets it idle for 3 s and reads its RSS
from /proc: what a user's machine pays to keep it running.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent

COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass (floor)", [sys.executable, "-c", "pass"]),
    ("prefect --help (baseline)", [str(BIN / "prefect"), "--help"]),
    ("aitrader --help", [str(BIN / "aitrader"), "--help"]),
    ("aitrader council --help", [str(BIN / "aitrader"), "council", "--help"]),
    ("aitrader council run --help", [str(BIN / "aitrader"), "council", "run", "--help"]),
    ("aitrader backtest run --help", [str(BIN / "aitrader"), "backtest", "run", "--help"]),
    ("aitrader data import --help", [str(BIN / "aitrader"), "data", "import", "--help"]),
    ("aitrader orders --help", [str(BIN / "aitrader"), "orders", "--help"]),
    ("aitrader up --help", [str(BIN / "aitrader"), "up", "--help"]),
    (
        "aitrader data import missing.csv (refused)",
        [str(BIN / "aitrader"), "data", "import", "missing.csv"],
    ),
    (
        "aitrader council run --as-of 2020-13-01 (refused)",
        [str(BIN / "aitrader"), "council", "run", "--as-of", "2020-13-01"],
    ),
]


@dataclass
class Timing:
    name: str
    seconds: list[float]
    max_rss_mb: float
    exit_code: int


def _run_once(argv: list[str], cwd: Path) -> tuple[float, float, int]:
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(cwd)
    )
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss / 1024, child.returncode


def _env(cwd: Path) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": f"sqlite:///{cwd}/bench.db",
        "PREFECT_HOME": str(cwd / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def time_commands(runs: int, cwd: Path) -> list[Timing]:
    results = []
    for name, argv in COMMANDS:
        _run_once(argv, cwd)  # warm the page cache and the bytecode cache
        samples = [_run_once(argv, cwd) for _ in range(runs)]
        results.append(
            Timing(
                name,
                [s for s, _, _ in samples],
                max(rss for _, rss, _ in samples),
                samples[-1][2],
            )
        )
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_idle_rss(cwd: Path) -> tuple[float, float]:
    """(seconds until /health answered, RSS in MB after 3 s idle)."""
    import httpx  # here, not at the top: a forked child starts with the parent's peak RSS

    port = _free_port()
    subprocess.run(
        [str(BIN / "aitrader"), "db", "upgrade"],
        cwd=cwd,
        env=_env(cwd),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.perf_counter()
    server = subprocess.Popen(
        [str(BIN / "aitrader"), "serve", "--port", str(port)],
        cwd=cwd,
        env=_env(cwd),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"aitrader serve exited with {server.returncode}")
            time.sleep(0.1)
        ready = time.perf_counter() - started
        time.sleep(3)
        status = Path(f"/proc/{server.pid}/status").read_text()
        rss_kb = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
        )
        return ready, rss_kb / 1024
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-server", action="store_true")
    args = parser.parse_args()
    cwd = Path(tempfile.mkdtemp(prefix="aitrader-cli-bench-"))
    try:
        timings = time_commands(args.runs, cwd)
        floor = statistics.median(timings[0].seconds)
        prefect = statistics.median(timings[1].seconds)
        out = sys.stdout
        out.write(f"{args.runs} runs each, {os.cpu_count()} cores\n\n")
        out.write("| command | median | best | vs prefect --help | peak RSS | exit |\n")
        out.write("|---|---:|---:|---:|---:|---:|\n")
        for t in timings:
            median = statistics.median(t.seconds)
            out.write(
                f"| `{t.name}` | {median:.2f} s | {min(t.seconds):.2f} s | "
                f"{median / prefect:.2f}x | {t.max_rss_mb:.0f} MB | {t.exit_code} |\n"
            )
        out.write(f"\nfloor (python -c pass): {floor:.2f} s\n")
        if not args.no_server:
            ready, rss = server_idle_rss(cwd)
            out.write(f"\n`aitrader serve`: /health after {ready:.1f} s, idle RSS {rss:.0f} MB\n")
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


if __name__ == "__main__":
    main()
