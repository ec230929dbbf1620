"""The realtime process end to end: a real uvicorn server, real HTTP and SSE clients."""

from __future__ import annotations

import gc
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx_sse import connect_sse
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from api.app import create_app
from realtime.gc_policy import NEVER
from services.settings import Settings
from tests.live_server import serve_in_thread
from tests.worker_heap import freeze_again

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]


@pytest.fixture
def settings(migrated_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.chdir(tmp_path)
    return Settings(
        database_url=migrated_db_url,
        realtime_symbols=SYMBOLS,
        sim_interval_ms=20,
        sse_interval_ms=50,
        sse_heartbeat_s=0.5,
        gc_full_every_s=0,  # the GC policy: test_shutdown_stops_everything_... below
    )


@pytest.fixture
def server(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    app = create_app(settings)
    with serve_in_thread(app) as url:
        yield url, app


def _events(url: str, path: str, n: int, timeout: float = 10.0) -> list[tuple[str, str, object]]:
    out: list[tuple[str, str, object]] = []
    with (
        httpx.Client(base_url=url, timeout=timeout) as client,
        connect_sse(client, "GET", path) as source,
    ):
        for sse in source.iter_sse():
            out.append((sse.event, sse.id, json.loads(sse.data)))
            if len(out) >= n:
                break
    return out


def test_sse_sends_a_snapshot_then_moving_prices(server: tuple[str, FastAPI]) -> None:
    url, _ = server
    events = _events(url, "/api/stream/prices", 4)
    kind, _, snapshot = events[0]
    assert kind == "snapshot"
    assert sorted(row["symbol"] for row in snapshot) == SYMBOLS  # type: ignore[attr-defined]
    assert [e[0] for e in events[1:]] == ["prices"] * 3
    ids = [int(e[1]) for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4
    assert all(row["price"] > 0 for _, _, rows in events for row in rows)  # type: ignore[attr-defined]


def test_sse_symbol_filter_and_resume_is_a_new_snapshot(server: tuple[str, FastAPI]) -> None:
    url, _ = server
    events = _events(url, "/api/stream/prices?symbols=bbb,CCC", 3)
    assert {row["symbol"] for _, _, rows in events for row in rows} <= {"BBB", "CCC"}  # type: ignore[attr-defined]
    with (
        httpx.Client(base_url=url, timeout=10) as client,
        connect_sse(
            client, "GET", "/api/stream/prices", headers={"Last-Event-ID": events[-1][1]}
        ) as source,
    ):
        assert next(iter(source.iter_sse())).event == "snapshot"


def test_a_paused_client_does_not_delay_another(server: tuple[str, FastAPI]) -> None:
    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    paused = socket.create_connection((host, int(port)))
    paused.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    paused.sendall(
        b"GET /api/stream/prices HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    try:
        time.sleep(1.0)  # the paused client reads nothing while prices keep moving
        events = _events(url, "/api/stream/prices", 6)  # within the client's own timeout
        assert len(events) == 6
        assert b"event: snapshot" in paused.recv(65536)  # and it is still served when it reads
    finally:
        paused.close()


def test_health_ready_metrics_and_request_ids(server: tuple[str, FastAPI]) -> None:
    url, _ = server
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["source"]["ok"] is True
        assert client.get("/health/db").json()["ok"] is True
        redis = client.get("/health/redis").json()
        assert redis["bus"] == "InProcessBus"
        assert client.get("/health/services").json()["prefect"]["ok"] is True
        echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
        assert echoed.headers["x-request-id"] == "abc-123"
        assert float(echoed.headers["x-process-time"]) >= 0
        assert len(client.get("/health").headers["x-request-id"]) == 32
        time.sleep(0.2)
        metrics = client.get("/metrics").text
    ticks = next(
        line for line in metrics.splitlines() if line.startswith("aitrader_ticks_processed_total")
    )
    assert float(ticks.split()[-1]) > 0
    assert (
        'aitrader_http_request_seconds_count{method="GET",route="/health",status="200"}' in metrics
    )


def test_shutdown_stops_everything_the_lifespan_started(settings: Settings) -> None:
    """Also the GC policy, as `aitrader serve` runs it (the other tests here turn it off:
    its start-up collection walks this test worker's whole heap, ~0.6 s each)."""
    before = gc.get_threshold()
    gc.unfreeze()  # from CPython's defaults, not the worker's own freeze (tests/worker_heap.py)
    app = create_app(settings.model_copy(update={"gc_full_every_s": 600.0}))
    with serve_in_thread(app) as url:
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200
        runtime = app.state.runtime
        assert runtime.bridge.running
        assert runtime.job_poller is not None
        assert runtime.job_poller.running
        assert runtime.gc_policy is not None
        assert gc.get_threshold()[2] == NEVER  # no automatic full collection mid-frame
        assert gc.get_freeze_count() > 0
        assert runtime.gc_task.running
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert runtime.gc_task.running is False
    freeze_again()
    assert runtime.source.running is False
    assert runtime.hub.running is False
    assert runtime.ws_hub.running is False
    assert runtime.bridge.running is False
    assert runtime.job_poller.running is False
    assert runtime.status_task.running is False


def _gauge(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return float(
        next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " "))
    )


def test_disconnected_clients_are_forgotten(server: tuple[str, FastAPI]) -> None:
    url, _ = server
    _events(url, "/api/stream/prices", 2)
    with connect(_ws_url(url)) as ws:
        ws.send(json.dumps({"action": "subscribe", "topics": ["market_data"]}))
        _recv(ws)
        assert _gauge(url, "aitrader_ws_clients") == 1
    deadline = time.monotonic() + 5
    while (_gauge(url, "aitrader_sse_clients"), _gauge(url, "aitrader_ws_clients")) != (0, 0):
        assert time.monotonic() < deadline, "a disconnected client is still registered"
        time.sleep(0.05)


def _ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


def _recv(ws: Connection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=5))
    return message


def test_websocket_subscribe_filters_and_streams_prices(server: tuple[str, FastAPI]) -> None:
    url, _ = server
    with connect(_ws_url(url)) as ws:
        ws.send(json.dumps({"action": "subscribe", "topics": ["market_data"], "symbols": ["bbb"]}))
        assert _recv(ws)["type"] == "subscribed"
        snapshot = _recv(ws)
        assert snapshot["type"] == "market_data"
        assert [row["symbol"] for row in snapshot["data"]] == ["BBB"]
        for _ in range(3):
            update = _recv(ws)
            assert update["type"] == "market_data"
            assert {row["symbol"] for row in update["data"]} == {"BBB"}
        ws.send(json.dumps({"action": "ping"}))
        while (msg := _recv(ws))["type"] != "pong":
            assert msg["type"] == "market_data"


def test_websocket_system_status_says_what_runs(server: tuple[str, FastAPI]) -> None:
    url, _ = server
    with connect(_ws_url(url)) as ws:
        ws.send(json.dumps({"action": "subscribe", "topics": ["system_status"]}))
        assert _recv(ws)["type"] == "subscribed"
        status = _recv(ws)
        assert status["type"] == "system_status"
        assert status["data"]["source"] == "simulator"
        assert status["data"]["source_running"] is True
        assert status["data"]["ws_clients"] == 1


@pytest.mark.parametrize(
    ("command", "detail"),
    [
        ("{not json", "invalid JSON"),
        ('{"action": "dance"}', "invalid command"),
        ('{"action": "subscribe", "topics": ["gossip"]}', "invalid command"),
        (
            '{"action": "subscribe", "topics": ["orders"], "symbols": ["not a ticker"]}',
            "invalid command",
        ),
        ('{"action": "subscribe"}', "needs at least one topic"),
        ('{"action": "ping", "extra": 1}', "invalid command"),
        ("x" * 20_000, "longer than"),
    ],
)
def test_websocket_bad_commands_get_an_error_and_the_connection_survives(
    server: tuple[str, FastAPI], command: str, detail: str
) -> None:
    url, _ = server
    with connect(_ws_url(url)) as ws:
        ws.send(command)
        error = _recv(ws)
        assert error["type"] == "error"
        assert detail in error["data"]["detail"]
        ws.send(json.dumps({"action": "ping"}))
        assert _recv(ws)["type"] == "pong"


def test_health_services_checks_the_configured_prefect_api(settings: Settings) -> None:
    fake_prefect = FastAPI()

    @fake_prefect.get("/api/health")
    def prefect_health() -> bool:
        return True

    with serve_in_thread(fake_prefect) as prefect_url:
        configured = settings.model_copy(update={"prefect_api_url": f"{prefect_url}/api"})
        with serve_in_thread(create_app(configured)) as url:
            up = httpx.get(f"{url}/health/services", timeout=10)
            assert up.status_code == 200
            assert up.json()["prefect"] == {"ok": True, "detail": "HTTP 200"}
    gone = settings.model_copy(update={"prefect_api_url": f"{prefect_url}/api"})  # now stopped
    with serve_in_thread(create_app(gone)) as url:
        down = httpx.get(f"{url}/health/services", timeout=10)
    assert down.status_code == 503
    assert down.json()["prefect"]["ok"] is False
