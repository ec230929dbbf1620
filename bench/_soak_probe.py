"""What `bench/soak.py` reads from the running processes: /proc and each server's /metrics.

* `/proc`: RSS and CPU time of a pid, and its descendants (a replica's job processes
  and the Prefect server it started; they lead sessions of their own, but their parent
  is still the replica). No psutil: it is not a dependency.
* `MetricsScraper`: a thread scraping every server's `/metrics` once a second, because
  `aitrader_market_stream_lag_seconds` is a gauge (the lag of the newest prices message
  a replica applied): sampling it every 30 s would see 1 value in 30. Counters (5xx
  answers, unreadable market messages, WS drops) are read from the latest scrape.

Not here: judging (`_soak_judge.py`), driving load (`soak.py`).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from redis.exceptions import RedisError

CLK_TCK = os.sysconf("SC_CLK_TCK")
SCRAPE_EVERY_S = 1.0
SCRAPE_TIMEOUT_S = 30.0


# --- /proc ---------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    """Resident set size in MB (VmRSS), or None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cpu_s(pid: int) -> float | None:
    """utime + stime in seconds, or None if the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children, their children, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


# --- /metrics ------------------------------------------------------------------------


@dataclass
class Scraped:
    """One server's /metrics, as of the newest scrape; `lags` since the last `take`."""

    lags: list[float] = field(default_factory=list)
    server_5xx: int = 0
    unreadable: int = 0
    ws_dropped: int = 0
    failures: int = 0  # scrapes that got no 200
    last_failure: str = ""


class MetricsScraper:
    """Scrapes each of `bases` (name -> base URL) every second, each on a thread of its
    own (one server that answers slowly does not thin out the others' scrapes). A scrape
    fails when it gets no 200 within `SCRAPE_TIMEOUT_S`: slower than that, a dashboard
    would have given up too."""

    def __init__(self, bases: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._state = {name: Scraped() for name in bases}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(name, base), name=name, daemon=True)
            for name, base in bases.items()
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=SCRAPE_TIMEOUT_S + 5)

    def take(self) -> dict[str, Scraped]:
        """Each server's state; the lags collected since the previous `take` move out."""
        with self._lock:
            taken = {}
            for name, state in self._state.items():
                taken[name] = Scraped(
                    list(state.lags),
                    state.server_5xx,
                    state.unreadable,
                    state.ws_dropped,
                    state.failures,
                    state.last_failure,
                )
                state.lags.clear()
            return taken

    def _run(self, name: str, base: str) -> None:
        with httpx.Client(timeout=SCRAPE_TIMEOUT_S) as client:
            while not self._stop.wait(SCRAPE_EVERY_S):
                self._scrape(client, name, base)

    def _scrape(self, client: httpx.Client, name: str, base: str) -> None:
        try:
            response = client.get(f"{base}/metrics")
            failed = "" if response.status_code == 200 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            failed = f"{type(exc).__name__}: {exc}"
        if failed:
            with self._lock:
                self._state[name].failures += 1
                self._state[name].last_failure = failed
            return
        lag: float | None = None
        server_5xx = 0
        counters: dict[str, int] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "aitrader_market_stream_lag_seconds":
                    lag = sample.value
                elif sample.name == "aitrader_http_request_seconds_count":
                    server_5xx += int(sample.value) if labels["status"].startswith("5") else 0
                elif sample.name == "aitrader_market_followed_total":
                    counters[f"followed.{labels['event']}"] = int(sample.value)
                elif sample.name == "aitrader_dropped_messages_total":
                    counters[f"dropped.{labels['channel']}"] = int(sample.value)
        with self._lock:
            state = self._state[name]
            if lag is not None:
                state.lags.append(lag)
            state.server_5xx = server_5xx
            state.unreadable = counters.get("followed.unreadable", 0)
            state.ws_dropped = counters.get("dropped.ws", 0)


# --- Redis ---------------------------------------------------------------------------


def redis_used_mb(redis: Redis | None) -> float:
    if redis is None:
        return math.nan
    try:
        return float(redis.info("memory")["used_memory"]) / 2**20
    except RedisError:
        return math.nan


def redis_keys(redis: Redis | None) -> str:
    """Every key's type, length (streams) and memory: where Redis's memory is."""
    if redis is None:
        return "redis: not reached"
    sizes = []
    for raw in redis.scan_iter(count=1000):
        key = _text(raw)
        kind = _text(redis.type(key))
        length = int(redis.xlen(key)) if kind == "stream" else None
        usage = int(redis.memory_usage(key, samples=0) or 0)
        sizes.append((usage, key, kind, length))
    sizes.sort(reverse=True)
    listed = ", ".join(
        f"{k} ({kind}{f', {n} entries' if n is not None else ''}) {u / 2**20:.1f} MB"
        for u, k, kind, n in sizes[:8]
    )
    used = redis_used_mb(redis)
    return f"redis at the end: used_memory {used:.1f} MB; largest keys: {listed}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
