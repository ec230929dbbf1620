"""The training flows end to end on the sample bars, on both databases: what they register,
export and write, and how a new version is decided against the active one."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from db.engine import make_engine, make_session_factory
from db.queries import model_registry as registry
from flows.training import train_forecaster_flow, train_pattern_classifier_flow, training
from models.enums import ModelStatus
from models.errors import InvalidInputError
from models.ml import ModelVersion
from services.inference.onnx_runner import OnnxRunner
from services.settings import get_settings

SYMBOLS = ["AAPL", "MSFT", "JPM", "XOM", "KO", "PG", "INTC", "WMT"]
SMALL: dict[str, Any] = {"window": 24, "horizon": 3, "epochs": 2, "folds": 2, "min_train_bars": 200}


@pytest.fixture
def ml_db(sample_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    yield sample_db
    get_settings.cache_clear()


def _versions(url: str, name: str) -> list[ModelVersion]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            rows = registry.versions(session, name)
            session.expunge_all()
            return rows
    finally:
        engine.dispose()


def test_the_forecaster_is_exported_checked_registered_and_carded(ml_db: str) -> None:
    result = train_forecaster_flow(symbols=SYMBOLS, stacks=["generic"], **SMALL)
    (row,) = _versions(ml_db, "forecaster")
    assert (row.version, row.status) == (1, ModelStatus.ACTIVE)  # the first is active
    assert result["status"] == "active"
    assert result["version"] == 1
    onnx = Path(row.onnx_path)
    assert onnx.is_file()
    assert hashlib.sha256(onnx.read_bytes()).hexdigest() == row.onnx_sha256
    assert onnx.name == f"{row.onnx_sha256[:16]}.onnx"  # named by content: never rewritten
    assert row.metrics["parity_max_abs_diff"] <= 1e-5
    for key in ("mase", "naive_mase", "seasonal_naive_mase", "smape", "directional_accuracy"):
        assert np.isfinite(row.metrics[key]), key
    assert row.metrics["beats_naive"] == float(row.metrics["mase"] < row.metrics["naive_mase"])
    assert row.data_from.date() == date(2015, 1, 12)
    assert row.data_to.date() == date(2020, 1, 10)
    assert row.params["window"] == 24
    assert row.params["stacks_chosen"] == "generic"
    # The runner serves the file as the realtime engine would: raw (price, size) windows.
    runner = OnnxRunner(onnx, name="forecaster", window=24)
    windows = np.stack([np.linspace(100, 101, 24), np.full(24, 1e6)], axis=1)[None]
    assert runner.run(windows).shape == (1, 3)
    card = Path(result["card_path"]).read_text()
    assert card.startswith("# forecaster v1: active")
    assert row.card == card  # kept with the version too: the API serves it from there
    assert row.onnx_sha256 in card
    assert "## Known limits" in card
    assert re.search(r"\| mase \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", card)  # model, naive, seasonal
    verdict = "Beats" if row.metrics["mase"] < row.metrics["naive_mase"] else "Does not beat"
    assert f"**{verdict} the random walk** out of sample" in card


def test_the_classifier_reports_balance_and_calibration(ml_db: str) -> None:
    result = train_pattern_classifier_flow(symbols=SYMBOLS, **SMALL)
    (row,) = _versions(ml_db, "pattern_classifier")
    assert row.status is ModelStatus.ACTIVE
    assert {"log_loss", "prior_log_loss", "ece", "brier", "accuracy"} <= set(row.metrics)
    assert row.metrics["parity_max_abs_diff"] <= 1e-5
    probs = OnnxRunner(Path(row.onnx_path), name="c", window=24).run(
        np.stack([np.linspace(50, 49, 24), np.full(24, 5e5)], axis=1)[None]
    )
    assert probs.shape == (1, 3)
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    card = Path(result["card_path"]).read_text()
    assert "## Calibration" in card
    assert "ECE" in card
    assert "down/flat/up" in card


def test_a_new_version_is_decided_on_the_same_held_out_bars(ml_db: str) -> None:
    # v1 never sees the last quarter; v2 is scored on it, and so is v1, from its file.
    first = train_forecaster_flow(
        symbols=SYMBOLS, stacks=["generic"], end=date(2019, 9, 30), **SMALL
    )
    second = train_forecaster_flow(symbols=SYMBOLS, stacks=["generic"], **SMALL)
    assert first["status"] == "active"
    assert "both on held-out bars" in second["decision"]
    ours, theirs = second["metrics"]["holdout_mase"], second["metrics"]["holdout_mase_active_v1"]
    assert second["status"] == ("active" if ours < theirs else "refused")
    assert f"{ours:.4g} against the active v1's {theirs:.4g}" in second["decision"]
    # The same training again makes the same file; no better is not better: refused.
    third = train_forecaster_flow(symbols=SYMBOLS, stacks=["generic"], **SMALL)
    assert third["onnx_sha256"] == second["onnx_sha256"]
    assert third["status"] == "refused"
    assert "not better out of sample" in third["decision"]
    rows = _versions(ml_db, "forecaster")
    assert [r.status for r in rows].count(ModelStatus.ACTIVE) == 1


def test_ab_registers_a_challenger_and_changes_nothing_active(ml_db: str) -> None:
    result = training(
        models=["pattern_classifier"],
        symbols=SYMBOLS,
        ab=True,
        window=24,
        horizon=3,
        epochs=1,
        folds=1,
    )
    assert result["pattern_classifier"]["status"] == "challenger"
    (row,) = _versions(ml_db, "pattern_classifier")
    assert row.status is ModelStatus.CHALLENGER


def test_too_few_bars_is_refused_in_one_line(ml_db: str) -> None:
    with pytest.raises(InvalidInputError, match=r"too few for this walk-forward"):
        train_forecaster_flow(symbols=SYMBOLS, start=date(2019, 6, 1), **SMALL)
    assert _versions(ml_db, "forecaster") == []
