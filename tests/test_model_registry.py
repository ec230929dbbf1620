"""The model registry on both databases: versions numbered per name, promotion only for a
better model out of sample (refused with the figures otherwise), A/B challengers, and one
active version per name held by the database itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.queries import model_registry as registry
from models.enums import ModelStatus
from models.errors import ConflictError, InvalidInputError, NotFoundError
from models.ml import ModelVersion

FROM, TO = datetime(2015, 1, 2, tzinfo=UTC), datetime(2019, 12, 31, tzinfo=UTC)


def _register(session: Session, name: str = "forecaster", **metrics: Any) -> ModelVersion:
    return registry.register(
        session,
        name=name,
        kind="forecaster",
        onnx_path=f"models/{name}.onnx",
        onnx_sha256="ab" * 32,
        data_hash="cd" * 32,
        data_from=FROM,
        data_to=TO,
        params={"stacks": "generic", "lookback": 30},
        metrics=metrics,
    )


def test_versions_are_numbered_per_name_and_start_as_candidates(session: Session) -> None:
    first, second = _register(session, mase=1.0), _register(session, mase=0.9)
    other = _register(session, "pattern_classifier", log_loss=0.6)
    assert [(v.name, v.version) for v in (first, second, other)] == [
        ("forecaster", 1),
        ("forecaster", 2),
        ("pattern_classifier", 1),
    ]
    assert {v.status for v in (first, second, other)} == {ModelStatus.CANDIDATE}
    assert [v.version for v in registry.versions(session, "forecaster")] == [2, 1]
    assert registry.active(session, "forecaster") is None
    stored = registry.get_version(session, "forecaster", 1)
    assert (stored.data_from, stored.params["lookback"]) == (FROM, 30)
    with pytest.raises(NotFoundError, match="no version 9 of model 'forecaster'"):
        registry.get_version(session, "forecaster", 9)
    with pytest.raises(InvalidInputError, match="data_to"):
        registry.register(
            session, name="x", kind="forecaster", onnx_path="x", onnx_sha256="0" * 64,
            data_hash="0" * 64, data_from=TO, data_to=FROM, params={}, metrics={},
        )  # fmt: skip


def test_a_candidate_is_promoted_only_if_it_beats_the_active_version(session: Session) -> None:
    first = registry.promote(
        session, "forecaster", _register(session, mase=0.98).version, metric="mase"
    )
    assert first.status is ModelStatus.ACTIVE
    assert first.decision == "first active version (mase 0.98)"  # no baseline stored

    worse = _register(session, mase=1.02)
    refused = registry.promote(session, "forecaster", worse.version, metric="mase")
    assert refused.status is ModelStatus.REFUSED
    assert refused.decision == (
        "not better out of sample (lower wins): mase 1.02 against the active v1's 0.98 "
        "(stored out-of-sample figures)"
    )
    tie = _register(session, mase=0.98)
    assert registry.promote(session, "forecaster", tie.version, metric="mase").status is (
        ModelStatus.REFUSED  # equal is not better
    )
    assert registry.active(session, "forecaster") is first

    better = _register(session, mase=0.91)
    promoted = registry.promote(session, "forecaster", better.version, metric="mase")
    assert promoted.status is ModelStatus.ACTIVE
    assert registry.get_version(session, "forecaster", 1).status is ModelStatus.RETIRED
    assert (
        first.decision
        == "replaced by v4: mase 0.91 against the active v1's 0.98 (stored out-of-sample figures)"
    )
    assert registry.active(session, "forecaster") is promoted
    # Higher wins for a metric not known to be lower-is-better.
    registry.promote(
        session, "clf", _register(session, "clf", accuracy=0.55).version, metric="accuracy"
    )
    lower = registry.promote(
        session, "clf", _register(session, "clf", accuracy=0.54).version, metric="accuracy"
    )
    assert lower.status is ModelStatus.REFUSED


def test_ab_makes_a_challenger_and_only_a_candidate_can_be_decided(session: Session) -> None:
    registry.promote(session, "forecaster", _register(session, mase=0.9).version, metric="mase")
    worse = _register(session, mase=1.5)
    challenger = registry.promote(session, "forecaster", worse.version, metric="mase", ab=True)
    assert challenger.status is ModelStatus.CHALLENGER  # scored live beside, deciding nothing
    assert registry.active(session, "forecaster").version == 1  # type: ignore[union-attr]
    with pytest.raises(ConflictError, match="forecaster v2 is challenger, not a candidate"):
        registry.promote(session, "forecaster", worse.version, metric="mase")
    with pytest.raises(InvalidInputError, match=r"metrics.mase: must be finite"):
        _register(session, mase=float("nan"))  # JSON cannot hold it: refused at the door
    for metrics in ({}, {"mase": "0.9"}, {"mase": True}):
        bad = _register(session, **metrics)
        with pytest.raises(InvalidInputError, match="no finite 'mase'"):
            registry.promote(session, "forecaster", bad.version, metric="mase")
        assert bad.status is ModelStatus.CANDIDATE  # nothing decided


def test_the_database_holds_one_active_version_per_name(session: Session) -> None:
    first, second = _register(session, mase=1.0), _register(session, mase=0.9)
    registry.promote(session, "forecaster", first.version, metric="mase")
    session.flush()
    other = _register(session, "pattern_classifier", log_loss=0.5)
    registry.promote(session, "pattern_classifier", other.version, metric="log_loss")
    session.flush()  # another name's active version is no conflict
    second.status = ModelStatus.ACTIVE  # a second active forecaster, written around us
    with pytest.raises(IntegrityError), session.begin_nested():
        session.flush()


def test_a_first_version_says_whether_it_beats_its_baseline(session: Session) -> None:
    weak = _register(session, mase=1.02, naive_mase=1.0)
    decided = registry.promote(session, "forecaster", weak.version, metric="mase")
    assert decided.status is ModelStatus.ACTIVE  # served: there is nothing better to serve
    assert decided.decision == "first active version (mase 1.02; does not beat the random walk's 1)"
    clf = _register(session, "pattern_classifier", log_loss=1.05, prior_log_loss=1.09)
    decided = registry.promote(session, "pattern_classifier", clf.version, metric="log_loss")
    assert decided.decision == (
        "first active version (log_loss 1.05; beats the class prior's 1.09)"
    )
