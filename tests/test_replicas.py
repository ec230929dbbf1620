"""The scale-out topology on loopback, as processes: one `ingest` process and `api`
replicas (one with two uvicorn workers) on a private Redis and a shared database.

Replicas serve the same prices at the same version and the same books; a replica
started late catches up; one killed loses only its own clients, who reconnect to
another, while the other's clients never notice.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.private_redis import PrivateRedis
from tests.replica_stack import ReplicaStack, Served, replica_stack

pytestmark = pytest.mark.xdist_group("replicas")

SETTLE_S = 1.0  # after pausing the ingest process: its last messages reach every replica


@pytest.fixture
def stack(
    migrated_db_url: str, redis_server: PrivateRedis, tmp_path: Path
) -> Iterator[ReplicaStack]:
    with replica_stack(migrated_db_url, redis_server.url, tmp_path / "stack") as running:
        yield running


def prices(served: Served) -> list[dict[str, Any]]:
    response = httpx.get(f"{served.base}/api/market/prices", timeout=10)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def book(served: Served, symbol: str) -> dict[str, Any]:
    response = httpx.get(f"{served.base}/api/book/{symbol}", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass
class SSEClient:
    """A price-stream client that reconnects to the next base when its stream breaks."""

    bases: list[str]
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time, base, event)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            base = self.bases[attempt % len(self.bases)]
            attempt += 1
            try:
                with httpx.stream(
                    "GET", f"{base}/api/stream/prices", timeout=httpx.Timeout(5, read=5)
                ) as response:
                    for line in response.iter_lines():
                        if line.startswith("event:"):
                            self.events.append((time.monotonic(), base, line[6:].strip()))
                        if self.stop.is_set():
                            return
            except httpx.HTTPError:
                time.sleep(0.1)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=10)

    def received_from(self, base: str, after: float) -> list[str]:
        return [event for t, b, event in self.events if b == base and t > after]

    def longest_silence(self, start: float, end: float) -> float:
        times = [start] + [t for t, _, _ in self.events if start < t < end] + [end]
        return max(b - a for a, b in itertools.pairwise(times))


def test_replicas_serve_the_same_prices_and_books_and_a_late_one_catches_up(
    stack: ReplicaStack,
) -> None:
    ingest = stack.start("ingest", "ingest")
    one = stack.start("api-1", "api")
    two = stack.start("api-2", "api", workers=2)
    time.sleep(2)  # prices move (the simulator steps every 100 ms)
    late = stack.start("api-3", "api", wait=False)  # starts while prices move

    ingest.pause()  # the market stops: every replica must settle on the same state
    try:
        time.sleep(SETTLE_S)
        late_started = time.monotonic()
        while time.monotonic() - late_started < 60:
            try:
                if httpx.get(f"{late.base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        first = prices(one)
        assert len(first) >= 5
        assert len({row["version"] for row in first}) == len(first)  # each its own version
        # Two workers: each request may reach either; both must give the same answer.
        for served in (two, two, two, two, late):
            assert prices(served) == first, served.name
        symbol = first[0]["symbol"]
        assert book(two, symbol) == book(one, symbol) == book(late, symbol)
    finally:
        ingest.resume()

    time.sleep(1)  # and they keep following once it moves again
    moved = prices(one)
    assert max(r["version"] for r in moved) > max(r["version"] for r in first)


def test_a_killed_replica_loses_only_its_own_clients_who_reconnect_to_another(
    stack: ReplicaStack,
) -> None:
    stack.start("ingest", "ingest")
    one = stack.start("api-1", "api")
    two = stack.start("api-2", "api")
    on_one = SSEClient([one.base, two.base])
    on_two = SSEClient([two.base, one.base])
    try:
        time.sleep(3)
        assert on_one.received_from(one.base, 0)
        assert on_two.received_from(two.base, 0)

        killed_at = time.monotonic()
        one.kill()
        time.sleep(4)
        until = time.monotonic()

        moved = on_one.received_from(two.base, killed_at)
        assert moved[:1] == ["snapshot"]
        assert "prices" in moved
        assert not on_two.received_from(one.base, 0)  # never had to leave its replica
        assert on_two.longest_silence(killed_at, until) < 1.5  # prices every 0.5 s went on
        assert httpx.get(f"{two.base}/ready", timeout=5).status_code == 200
    finally:
        on_one.close()
        on_two.close()
