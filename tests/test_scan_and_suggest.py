"""The pattern scan, the suggestion flow and the training job, on both databases: what they
compute from stored bars (point in time), what they write, and what the API refuses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries import model_registry as registry
from flows.pattern_scan import pattern_scan
from flows.suggestion import suggestion
from models.enums import ModelStatus
from models.ml import ModelVersion
from models.ops import Job
from models.suggestions import Suggestion
from services.settings import get_settings
from tests.api_support import Api
from tests.onnx_models import constant_model

SYMBOLS = ["AAPL", "MSFT", "XOM", "JPM"]
UP = [0.1, 0.2, 0.7]


@pytest.fixture
def flow_url(sample_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    yield sample_db
    get_settings.cache_clear()


def _activate(url: str, path: Path, name: str, row: list[float], window: int = 16) -> None:
    constant_model(path, window=window, row=row)
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            version = registry.register(
                session, name=name, kind=name, onnx_path=str(path), onnx_sha256="0" * 64,
                data_hash="0" * 64, data_from=datetime(2015, 1, 1, tzinfo=UTC),
                data_to=datetime(2016, 1, 1, tzinfo=UTC),
                params={"window": window, "horizon": len(row)}, metrics={"log_loss": 1.0},
            )  # fmt: skip
            version.status = ModelStatus.ACTIVE
    finally:
        engine.dispose()


def _suggestions(url: str) -> list[Suggestion]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            rows = list(session.scalars(select(Suggestion).order_by(Suggestion.symbol)))
            session.expunge_all()
            return rows
    finally:
        engine.dispose()


def test_a_scan_reports_each_pattern_and_what_followed_point_in_time(flow_url: str) -> None:
    early = pattern_scan(symbols=SYMBOLS, end=date(2018, 6, 29), classify=False)
    later = pattern_scan(symbols=SYMBOLS, end=date(2019, 12, 31), classify=False)
    assert early["signals"] > 0
    assert sum(row["signals"] for row in early["by_kind"]) == early["signals"]
    assert early["classifier_version"] is None
    assert early["by_class"] == []
    # What fired up to mid-2018 does not change when later bars exist: no look-ahead.
    assert later["signals"] > early["signals"]
    kinds = {row["kind"]: row for row in later["by_kind"]}
    for row in early["by_kind"]:
        assert kinds[row["kind"]]["signals"] >= row["signals"]
    for row in later["by_kind"]:
        if row["hit_rate"] is not None:
            assert 0 <= row["hit_rate"] <= 1
    assert [s["ts"] for s in later["latest"]] == sorted(
        (s["ts"] for s in later["latest"]), reverse=True
    )


def test_a_scan_scores_each_signal_with_the_active_classifier(
    flow_url: str, tmp_path: Path
) -> None:
    _activate(flow_url, tmp_path / "c.onnx", "pattern_classifier", UP)
    result = pattern_scan(symbols=SYMBOLS[:2], start=date(2018, 1, 1), end=date(2019, 12, 31))
    assert result["classifier_version"] == 1
    (only,) = result["by_class"]  # a classifier that always says up
    assert only["class"] == "up"
    assert 0 < only["signals"] <= result["signals"]  # those with a full window then
    assert all(s["probs"] == pytest.approx(UP) for s in result["latest"] if s["probs"])


def test_suggestions_as_of_a_close_are_scored_and_written_once(
    flow_url: str, tmp_path: Path
) -> None:
    alone = suggestion(symbols=SYMBOLS, as_of=date(2019, 6, 28))
    assert alone["as_of"] == "2019-06-28"
    assert alone["written"] == len(SYMBOLS)
    assert all("no active model" in (s["degraded"] or "") for s in alone["suggestions"])
    again = suggestion(symbols=SYMBOLS, as_of=date(2019, 6, 28))
    assert again["written"] == 0  # the same day again adds nothing
    _activate(flow_url, tmp_path / "f.onnx", "forecaster", [0.01, 0.01, 0.01])
    _activate(flow_url, tmp_path / "c.onnx", "pattern_classifier", UP)
    scored = suggestion(symbols=SYMBOLS, as_of=date(2019, 12, 31), job_id=None)
    assert scored["written"] == len(SYMBOLS)
    rows = [r for r in _suggestions(flow_url) if r.ts.date() == date(2019, 12, 31)]
    assert [r.symbol for r in rows] == sorted(SYMBOLS)
    for row in rows:
        assert row.direction == "buy"  # both models say up; a sell signal cannot outvote both
        assert row.inputs["forecaster"]["version"] == 1
        assert row.inputs["pattern_classifier"]["probs"]["up"] == pytest.approx(0.7)
        assert row.inputs["source"]["as_of"].startswith("2019-12-31")
        assert row.horizon == 3
        assert row.contributions["forecaster"] is not None
        if row.signal_kind == "none":
            assert "no pattern signal" in (row.degraded or "")
        else:
            assert row.degraded is None


# --- over the API: the jobs themselves run in tests/test_dashboard_model_jobs.py ----------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "suggestion", "params": {"as_of": "2031-01-02"}}, "body.params.as_of"),
        ({"type": "suggestion", "params": {"symbols": ["NOPE"]}}, "body.params.symbols"),
        ({"type": "suggestion", "params": {"recent_bars": 0}}, "body.suggestion.params"),
        (
            {"type": "pattern_scan", "params": {"start": "2019-01-01", "end": "2018-01-01"}},
            "body.pattern_scan.params",
        ),
        ({"type": "pattern_scan", "params": {"start": "2001-01-02"}}, "body.params.start"),
        ({"type": "training", "params": {"window": 61}}, "body.training.params.window"),
        ({"type": "training", "params": {"models": ["x"]}}, "body.training.params.models"),
        (
            {"type": "training", "params": {"models": ["forecaster", "forecaster"]}},
            "body.training.params.models",
        ),
    ],
)
def test_a_bad_model_job_is_a_422_naming_the_field_and_writes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    response = api.post("/api/jobs", json=body)
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0
