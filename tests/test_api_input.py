"""Input no database can store is refused at the door with a 4xx naming the field:
NUL characters and lone surrogates in bodies, NUL in URLs, names that are not names."""

from __future__ import annotations

from sqlalchemy import func, select

from models.enums import Role
from models.ops import Job
from models.users import Conversation
from tests.api_support import Api


def test_text_a_database_cannot_store_is_a_422_naming_the_field(api: Api) -> None:
    nul = api.post("/api/conversations", json={"title": "week\u0000"})
    assert nul.status_code == 422
    assert nul.json()["errors"][0]["field"] == "body.title"
    surrogate = api.post(
        "/api/conversations",
        content=b'{"title": "week \\udc58"}',
        headers={"Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422
    assert surrogate.json()["errors"][0]["field"].startswith("body")
    odd_model = api.post(
        "/api/jobs", json={"type": "council", "params": {"models": ["gpt 4; drop table"]}}
    )
    assert odd_model.status_code == 422
    ancient = api.post("/api/jobs", json={"type": "council", "params": {"as_of": "0401-06-27"}})
    assert ancient.status_code == 422
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Conversation)) == 0
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_nul_in_the_url_is_refused_before_any_handler(api: Api) -> None:
    refused = api.get("/api/audit?actor=%00x", role=Role.ADMIN)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "query"
    assert refused.headers["x-request-id"]


def test_approving_a_pitch_for_an_unknown_account_is_a_422(api: Api) -> None:
    refused = api.post("/api/pitches/1/approve", json={"account": "nobody", "qty": 1})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "body.account"


def test_a_database_that_is_gone_or_busy_is_a_503_to_retry_not_a_500() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy.exc import OperationalError

    from api.errors import register_error_handlers

    app = FastAPI()
    register_error_handlers(app)

    @app.get("/busy")
    def busy() -> None:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/busy")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
    assert "database is locked" in answer.json()["detail"]
