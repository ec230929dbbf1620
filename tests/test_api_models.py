"""`GET /api/models` on both databases: the registry's models, their active version, A/B
challengers and every version's metrics and standing."""

from __future__ import annotations

from datetime import UTC, datetime

from db.engine import unit_of_work
from db.queries import model_registry as registry
from models.enums import Role
from tests.api_support import Api

FROM, TO = datetime(2015, 1, 2, tzinfo=UTC), datetime(2019, 12, 31, tzinfo=UTC)


def test_models_are_listed_with_their_active_version_and_every_versions_standing(
    api: Api,
) -> None:
    assert api.get("/api/models").json() == []
    with unit_of_work(api.sessions) as session:
        for name, mase in (("forecaster", 0.98), ("forecaster", 1.1), ("forecaster", 0.9)):
            registry.register(
                session, name=name, kind="forecaster", onnx_path="f.onnx",
                onnx_sha256="ab" * 32, data_hash="cd" * 32, data_from=FROM, data_to=TO,
                params={}, metrics={"mase": mase, "naive_mase": 1.0},
            )  # fmt: skip
        registry.promote(session, "forecaster", 1, metric="mase")
        registry.promote(session, "forecaster", 2, metric="mase", ab=True)
        registry.register(
            session, name="classifier", kind="pattern_classifier", onnx_path="c.onnx",
            onnx_sha256="ef" * 32, data_hash="cd" * 32, data_from=FROM, data_to=TO,
            params={}, metrics={"log_loss": 0.6},
        )  # fmt: skip

    models = api.get("/api/models", role=Role.VIEWER).json()
    assert [(m["name"], m["active_version"], m["challenger_versions"]) for m in models] == [
        ("classifier", None, []),
        ("forecaster", 1, [2]),
    ]
    forecaster = models[1]
    assert [(v["version"], v["status"]) for v in forecaster["versions"]] == [
        (3, "candidate"),
        (2, "challenger"),
        (1, "active"),
    ]
    assert forecaster["versions"][2]["metrics"] == {"mase": 0.98, "naive_mase": 1.0}
    assert forecaster["versions"][2]["decision"] == (
        "first active version (mase 0.98; beats the random walk's 1)"
    )
    assert forecaster["versions"][2]["data_from"] == "2015-01-02T00:00:00Z"
    only = api.get("/api/models", params={"name": "classifier"}).json()
    assert [m["name"] for m in only] == ["classifier"]
    assert api.get("/api/models", params={"name": "x" * 101}).status_code == 422
    assert api.get("/api/models", role=None).status_code == 401


def test_a_versions_model_card_is_served_as_markdown(api: Api) -> None:
    with unit_of_work(api.sessions) as session:
        for card in ("# forecaster v1: active\n\nDecision: first.\n", None):
            row = registry.register(
                session, name="forecaster", kind="forecaster", onnx_path="f.onnx",
                onnx_sha256="ab" * 32, data_hash="cd" * 32, data_from=FROM, data_to=TO,
                params={}, metrics={"mase": 0.9},
            )  # fmt: skip
            row.card = card
    listed = api.get("/api/models").json()[0]["versions"]
    assert [(v["version"], v["has_card"]) for v in listed] == [(2, False), (1, True)]
    served = api.get("/api/models/forecaster/1/card", role=Role.VIEWER)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/markdown")
    assert served.text.startswith("# forecaster v1: active")
    missing = api.get("/api/models/forecaster/2/card")
    assert missing.status_code == 404
    assert "no model card" in missing.json()["detail"]
    assert api.get("/api/models/forecaster/9/card").status_code == 404
    assert api.get("/api/models/forecaster/0/card").status_code == 422
    assert api.get("/api/models/forecaster/1/card", role=None).status_code == 401
