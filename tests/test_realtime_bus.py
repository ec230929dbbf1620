"""Flow results reach dashboards: over Redis Streams, or by polling the jobs table without it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.queries.jobs import record_stage
from models.bus import FILLS_GLOBAL, BusMessage
from models.enums import RunStatus
from models.ops import Job
from services.bus import RedisStreamsBus
from services.settings import Settings
from tests.live_server import free_port, serve_in_thread

REDIS_URL = "redis://127.0.0.1:6379/0"


def _migrated(url: str) -> str:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def _subscribe(ws: Connection, topics: list[str], symbols: list[str] | None = None) -> None:
    ws.send(json.dumps({"action": "subscribe", "topics": topics, "symbols": symbols or []}))
    assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"


def _next_of(ws: Connection, type_: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if message["type"] == type_:
            return message


def test_without_redis_job_changes_are_polled_from_the_database(
    migrated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        database_url=_migrated(migrated_db_url),
        realtime_symbols=["AAA"],
        job_poll_interval_ms=100,
        gc_full_every_s=0,  # see tests/live_server.py
    )
    sessions = make_session_factory(make_engine(migrated_db_url))
    with (
        serve_in_thread(create_app(settings)) as url,
        connect(url.replace("http", "ws") + "/ws") as ws,
    ):
        _subscribe(ws, ["job_updates"])
        with unit_of_work(sessions) as s:  # what a flow in another process does
            job = Job(type="backtest", params={"symbols": ["AAA"]})
            s.add(job)
        created = _next_of(ws, "job_updates")["data"]
        assert (created["event"], created["id"], created["status"]) == (
            "job.updated",
            job.id,
            "pending",
        )
        with unit_of_work(sessions) as s:  # a backfill's step: progress on the same stage
            record_stage(s, job.id, "sentiment", done=1, total=4, stored=3)
        first = _next_of(ws, "job_updates")["data"]
        with unit_of_work(sessions) as s:
            record_stage(s, job.id, "sentiment", done=2, total=4, stored=6)
        second = _next_of(ws, "job_updates")["data"]
        assert (first["stage"], first["done"], first["total"], first["stored"]) == (
            "sentiment", 1, 4, 3,
        )  # fmt: skip
        assert (second["status"], second["done"]) == ("running", 2)
        with unit_of_work(sessions) as s:
            s.execute(update(Job).where(Job.id == job.id).values(status=RunStatus.COMPLETED))
        done = _next_of(ws, "job_updates")["data"]
        assert (done["id"], done["status"]) == (job.id, "completed")


@pytest.mark.redis
@pytest.mark.usefixtures("redis_up")
def test_with_redis_bus_messages_reach_websocket_subscribers_by_symbol(
    migrated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        database_url=_migrated(migrated_db_url),
        realtime_symbols=["AAA"],
        redis_url=REDIS_URL,
        gc_full_every_s=0,
    )
    marker = uuid.uuid4().hex  # other test runs may share fills:global

    async def publish_fills() -> None:
        bus = RedisStreamsBus(REDIS_URL)
        try:
            for symbol in ("MSFT", "AAPL"):
                await bus.publish(
                    FILLS_GLOBAL, BusMessage(type="fill", data={"symbol": symbol, "run": marker})
                )
        finally:
            await bus.close()

    with (
        serve_in_thread(create_app(settings)) as url,
        connect(url.replace("http", "ws") + "/ws") as ws,
    ):
        _subscribe(ws, ["fills"], ["AAPL"])
        asyncio.run(publish_fills())
        while (fill := _next_of(ws, "fills")["data"])["run"] != marker:
            pass
        assert (fill["event"], fill["symbol"]) == ("fill", "AAPL")  # MSFT was filtered out
        health = httpx.get(f"{url}/health/redis", timeout=5).json()
        assert health == {"ok": True, "bus": "RedisStreamsBus", "status": "ok"}


def test_with_redis_unreachable_prices_still_flow_and_health_says_why(
    migrated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = Settings(
        database_url=_migrated(migrated_db_url),
        realtime_symbols=["AAA"],
        redis_url=dead,
        sim_interval_ms=20,
        sse_interval_ms=50,
        gc_full_every_s=0,
    )
    with serve_in_thread(create_app(settings)) as url:
        assert httpx.get(f"{url}/ready", timeout=5).status_code == 200
        health = httpx.get(f"{url}/health/redis", timeout=5)
        assert health.status_code == 503
        assert health.json()["status"].startswith("degraded")
        with (
            httpx.Client(base_url=url, timeout=10) as client,
            client.stream("GET", "/api/stream/prices") as response,
        ):
            seen = 0
            for line in response.iter_lines():
                if line.startswith("event:"):
                    seen += 1
                    if seen == 3:
                        break
        assert seen == 3
