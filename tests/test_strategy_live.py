"""The strategy engine inside the realtime app, on both databases: simulated ticks fire
signals, the served model scores them, and suggestions reach the WebSocket topic, the
table (GET /api/suggestions) and /metrics."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries import model_registry as registry
from models.enums import ModelStatus, Role
from tests.api_support import api_settings, running_api
from tests.onnx_models import constant_model

UP = [0.1, 0.2, 0.7]


def _activate(url: str, path: Path) -> None:
    constant_model(path, window=16, row=UP)
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            row = registry.register(
                session, name="pattern_classifier", kind="pattern_classifier",
                onnx_path=str(path), onnx_sha256="0" * 64, data_hash="0" * 64,
                data_from=datetime(2015, 1, 1, tzinfo=UTC),
                data_to=datetime(2016, 1, 1, tzinfo=UTC),
                params={"window": 16, "horizon": 5}, metrics={"log_loss": 1.0},
            )  # fmt: skip
            row.status = ModelStatus.ACTIVE
    finally:
        engine.dispose()


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_live_signals_become_suggestions_on_the_websocket_the_table_and_metrics(
    migrated_db_url: str, tmp_path: Path
) -> None:
    _activate(migrated_db_url, tmp_path / "c.onnx")
    settings = api_settings(
        migrated_db_url,
        pattern_engine=True,
        sim_interval_ms=20,
        # a z-score of 1.5 over 20 ticks and no cooldown: random walks fire often
        pattern_params={"zscore_threshold": 1.5, "zscore_window": 20, "cooldown_s": 0},
    )
    with running_api(settings) as api:
        headers = api.headers(Role.VIEWER)
        with api.client.websocket_connect("/ws", headers=headers) as ws:
            ws.send_text(json.dumps({"action": "subscribe", "topics": ["suggestions"]}))
            assert json.loads(ws.receive_text())["type"] == "subscribed"
            live: dict[str, Any] = {}
            while not live:
                message = json.loads(ws.receive_text())
                if message["type"] == "suggestions" and message["data"].get("degraded") is None:
                    live = message["data"]
        assert live["event"] == "suggestion"
        assert live["inputs"]["pattern_classifier"]["version"] == 1
        assert live["inputs"]["pattern_classifier"]["probs"]["up"] == pytest.approx(0.7, abs=1e-6)
        assert live["contributions"]["pattern_classifier"] > 0
        assert live["latency_ms"] is not None

        deadline = time.monotonic() + 30
        stored: list[dict[str, Any]] = []
        while not stored and time.monotonic() < deadline:
            stored = api.get("/api/suggestions", role=Role.VIEWER).json()
            time.sleep(0.2)
        assert stored, "no suggestion was written within 30 s"
        assert {"symbol", "direction", "contributions", "inputs"} <= set(stored[0])

        metrics = api.get("/metrics").text
        calls = _metric(
            metrics, "aitrader_inference_total", model="pattern_classifier", outcome="calls"
        )
        assert calls >= 1
        assert _metric(metrics, "aitrader_suggestion_latency_seconds_count") >= 1
        assert _metric(metrics, "aitrader_suggestions_total", event="suggestions") >= 1
        assert _metric(metrics, "aitrader_model_breaker_open", component="models") == 0
        status = api.get("/health", role=Role.VIEWER)
        assert status.status_code == 200
