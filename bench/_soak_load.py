"""The soak's users: chat trades at a steady pace and council jobs on a schedule.

Both speak to the api replicas through `tests.stack_load.Client`, as the README tells
a client to: every write carries an `Idempotency-Key`, a dropped connection or a 503
with Retry-After is retried with the same key. Its `LoadReport` collects every 5xx and
every request that never got an answer; what is counted here on top is a final answer
that is not a 2xx (a refused chat turn or job is a failed request for a soak).

* `ChatTrader`: a thread; every `every_s` one chat turn in one conversation, "buy 1
  AAPL" then "sell 1 AAPL" (the position stays at 0 or 1 share whatever the run's
  length), alternating replicas every two turns. Executed at once (CHAT_EXECUTE).
* `Councils`: `POST /api/jobs` of a council (offline analyst, approval auto,
  executing) for a given week on a given replica; `poll` reads their statuses.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tests.stack_load import FINAL, Client, LoadReport

CHAT_SYMBOL = "AAPL"


@dataclass
class ChatStats:
    ok: Counter[str] = field(default_factory=Counter)  # replica -> 2xx turns
    trades: Counter[str] = field(default_factory=Counter)  # a trade's status -> how many
    failed: int = 0
    latencies: list[float] = field(default_factory=list)  # since the last `take_latencies`
    errors: list[str] = field(default_factory=list)
    unfilled: list[str] = field(default_factory=list)  # the first trades not filled, as sent


class ChatTrader:
    def __init__(self, clients: dict[str, Client], every_s: float) -> None:
        self.clients = clients
        self.every_s = every_s
        self.stats = ChatStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chat", daemon=True)
        self._conversation = 0

    def start(self) -> None:
        first = next(iter(self.clients.values()))
        response = first.call("POST", "/api/conversations", json={"title": "soak"})
        response.raise_for_status()
        self._conversation = int(response.json()["id"])
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def take_latencies(self) -> list[float]:
        with self._lock:
            taken, self.stats.latencies = self.stats.latencies, []
            return taken

    def _run(self) -> None:
        replicas = list(self.clients)
        turn = 0
        next_at = time.monotonic()
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.every_s
            replica = replicas[(turn // 2) % len(replicas)]
            side = "buy" if turn % 2 == 0 else "sell"
            turn += 1
            self._turn(replica, f"{side} 1 {CHAT_SYMBOL}")

    def _turn(self, replica: str, content: str) -> None:
        started = time.monotonic()
        path = f"/api/conversations/{self._conversation}/message"
        try:
            response = self.clients[replica].call("POST", path, json={"content": content})
        except RuntimeError as exc:  # no answer after retries: LoadReport has it too
            self._failed(f"{replica} chat: {exc}")
            return
        took = time.monotonic() - started
        if not response.is_success:
            self._failed(f"{replica} chat: HTTP {response.status_code} {response.text[:200]}")
            return
        trades = (response.json().get("payload") or {}).get("trades", [])
        with self._lock:
            self.stats.ok[replica] += 1
            self.stats.latencies.append(took)
            for trade in trades:
                self.stats.trades[str(trade.get("status"))] += 1
                if trade.get("status") != "filled" and len(self.stats.unfilled) < 10:
                    self.stats.unfilled.append(f"{replica}: {str(trade)[:300]}")

    def _failed(self, line: str) -> None:
        with self._lock:
            self.stats.failed += 1
            if len(self.stats.errors) < 20:
                self.stats.errors.append(line)


@dataclass
class Councils:
    """Council jobs started by the soak: id -> (replica, week, latest job body)."""

    clients: dict[str, Client]
    jobs: dict[int, tuple[str, date, dict[str, Any]]] = field(default_factory=dict)
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def start(self, replica: str, as_of: date) -> int | None:
        body = {"type": "council", "params": {"as_of": as_of.isoformat(), "approval": "auto"}}
        try:
            response = self.clients[replica].call("POST", "/api/jobs", json=body)
        except RuntimeError as exc:
            self._failed(f"{replica} council {as_of}: {exc}")
            return None
        if not response.is_success:
            self._failed(f"{replica} council {as_of}: HTTP {response.status_code} {response.text}")
            return None
        job: dict[str, Any] = response.json()
        self.jobs[int(job["id"])] = (replica, as_of, job)
        return int(job["id"])

    def poll(self) -> None:
        """Read each unfinished job again (from the replica that started it)."""
        for job_id, (replica, as_of, body) in list(self.jobs.items()):
            if body.get("status") in FINAL:
                continue
            try:
                response = self.clients[replica].call("GET", f"/api/jobs/{job_id}")
            except RuntimeError as exc:
                self._failed(f"{replica} job {job_id}: {exc}")
                continue
            if response.is_success:
                self.jobs[job_id] = (replica, as_of, response.json())
            else:
                self._failed(f"{replica} job {job_id}: HTTP {response.status_code}")

    def statuses(self) -> dict[int, str]:
        return {job_id: str(body.get("status")) for job_id, (_, _, body) in self.jobs.items()}

    def unfinished(self) -> list[int]:
        return [i for i, status in self.statuses().items() if status not in FINAL]

    def _failed(self, line: str) -> None:
        self.failed += 1
        if len(self.errors) < 20:
            self.errors.append(line[:300])


def clients_for(bases: dict[str, str], token: str, report: LoadReport) -> dict[str, Client]:
    """One `Client` per replica, sharing one report (and its lock)."""
    lock = threading.Lock()
    return {name: Client(base, token, report, lock) for name, base in bases.items()}
