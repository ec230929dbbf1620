"""Who may do what: every route's role read from the app's own route table, tokens,
the anonymous local reader, the LLM rate limit, and the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import func, select

from api.app import create_app
from api.auth import Require
from db.engine import unit_of_work
from db.queries.tokens import issue_token, revoke_token
from models.base import utcnow
from models.enums import Role
from models.ops import AuditEvent, Job
from models.users import ApiToken
from services.settings import Settings
from tests.api_support import LOCAL, Api, api_settings, running_api

OPEN = {"/health", "/ready", "/health/db", "/health/redis", "/health/services"}
# POSTs a viewer may send: they compute an answer from stored data. verify also records a
# person's verdict when its body carries one; the handler then requires a trader itself, which
# the route table cannot show (tests/test_api_research_graph.py checks the 403 and the audit).
READ_ONLY_POSTS = {("POST", "/api/research/verify")}
BELOW = {Role.TRADER: Role.VIEWER, Role.ADMIN: Role.TRADER}


def _roles(dependant: Dependant) -> list[Role]:
    found = [dependant.call.role] if isinstance(dependant.call, Require) else []
    for sub in dependant.dependencies:
        found.extend(_roles(sub))
    return found


def _routes(app: FastAPI) -> list[tuple[str, str, Role | None]]:
    """(method, path, role needed) of every HTTP route, routers' own dependencies included
    (FastAPI >= 0.150 keeps included routers lazily: `iter_route_contexts` resolves them)."""
    out = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        roles = _roles(context.dependant)
        needed = max(roles, key=lambda r: r.rank) if roles else None
        for method in sorted(context.methods or ()):
            out.append((method, str(context.path), needed))
    return out


def _concrete(path: str) -> str:
    """A path template with a plausible value in each parameter."""
    return re.sub(r"\{(\w+)\}", lambda m: "AAPL" if m.group(1) == "symbol" else "1", path)


ROUTES = _routes(create_app(Settings()))
MUTATING = [(m, p, r) for m, p, r in ROUTES if m != "GET" and (m, p) not in READ_ONLY_POSTS]


def test_every_route_but_the_probes_needs_a_role() -> None:
    unguarded = [(m, p) for m, p, r in ROUTES if r is None and p not in OPEN]
    assert unguarded == []
    assert len(ROUTES) > 30  # the table really was read


def test_every_route_that_writes_needs_at_least_a_trader() -> None:
    weak = [(m, p, r) for m, p, r in MUTATING if r is None or r.rank < Role.TRADER.rank]
    assert weak == []
    assert MUTATING, "there are mutating routes to check"


def test_halting_trading_and_the_audit_log_need_an_admin() -> None:
    needed = {(m, p): r for m, p, r in ROUTES}
    assert needed[("POST", "/api/trading/halt")] is Role.ADMIN
    assert needed[("POST", "/api/trading/resume")] is Role.ADMIN
    assert needed[("GET", "/api/audit")] is Role.ADMIN


def test_without_a_token_every_guarded_route_is_401_and_with_too_small_a_role_403(
    api: Api,
) -> None:
    for method, path, needed in ROUTES:
        if needed is None:
            continue
        url = _concrete(path)
        missing = api.request(method, url, role=None, json={})
        assert missing.status_code == 401, (method, path, missing.text)
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"] == "Bearer"
        if needed in BELOW:
            weak = api.request(method, url, role=BELOW[needed], json={})
            assert weak.status_code == 403, (method, path, weak.text)
            assert f"needs the {needed} role" in weak.json()["detail"]
    with api.sessions() as session:  # refused requests wrote nothing
        assert session.scalar(select(func.count()).select_from(Job)) == 0
        assert (
            session.scalars(select(AuditEvent.event).where(AuditEvent.token_id.is_not(None))).all()
            == []
        )


def test_a_revoked_or_expired_or_made_up_token_is_401(api: Api) -> None:
    assert api.get("/api/jobs").status_code == 200
    with unit_of_work(api.sessions) as session:
        revoke_token(session, api.token_ids[Role.VIEWER])
        expired = issue_token(session, "old", Role.ADMIN, expires_at=utcnow() - timedelta(days=1))
    assert api.get("/api/jobs").status_code == 401
    headers = {"Authorization": f"Bearer {expired.secret}"}
    assert api.get("/api/jobs", role=None, headers=headers).status_code == 401
    made_up = {"Authorization": "Bearer ait_not-a-real-token"}
    assert api.get("/api/jobs", role=None, headers=made_up).status_code == 401
    with api.sessions() as session:
        used = session.get(ApiToken, api.token_ids[Role.TRADER])
        assert used is not None
        assert used.last_used_at is None  # not used yet in this test
    api.get("/api/jobs", role=Role.TRADER)
    with api.sessions() as session:
        used = session.get(ApiToken, api.token_ids[Role.TRADER])
        assert used is not None
        assert used.last_used_at is not None


@pytest.fixture
def local_api(api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Api]:
    monkeypatch.chdir(tmp_path)
    settings = api_settings(api_db_url, api_anonymous_read=True, api_llm_rate_per_minute=2)
    with running_api(settings, client=LOCAL) as api:
        yield api


def test_a_local_reader_needs_no_token_but_a_local_writer_does(local_api: Api) -> None:
    assert local_api.get("/api/jobs", role=None).status_code == 200
    refused = local_api.post("/api/jobs", role=None, json={"type": "council"})
    assert refused.status_code == 401
    assert local_api.get("/api/audit", role=None).status_code == 401


def test_llm_spending_routes_are_rate_limited_per_token(local_api: Api) -> None:
    bad = {"type": "council", "params": {"max_weight": 5}}  # refused after the limiter counts
    first = local_api.post("/api/jobs", json=bad)
    assert first.status_code == 422
    assert first.json()["errors"][0]["field"].endswith("max_weight")
    assert local_api.post("/api/jobs", json=bad).status_code == 422
    limited = local_api.post("/api/jobs", json=bad)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["title"] == "Too many requests"
    other = local_api.post("/api/jobs", json=bad, role=Role.ADMIN)  # another token, own bucket
    assert other.status_code == 422
    with local_api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_the_audit_log_lists_writes_with_who_made_them(api: Api) -> None:
    bad = api.post("/api/jobs", json={"type": "backtest", "params": {}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"].startswith("body")
    with unit_of_work(api.sessions) as session:
        from db.queries.audit import record_event

        record_event(
            session,
            actor="x",
            event="watchlist.added",
            entity_type="watchlist",
            entity_id="AAPL",
            token_id=api.token_ids[Role.TRADER],
            role="trader",
        )
        record_event(session, actor="y", event="job.requested", entity_type="job", entity_id=1)
    assert api.get("/api/audit", role=Role.TRADER).status_code == 403
    page = api.get("/api/audit", role=Role.ADMIN, params={"limit": 1}).json()
    assert [e["event"] for e in page["items"]] == ["job.requested"]
    assert page["next_offset"] == 1
    mine = api.get(
        "/api/audit", role=Role.ADMIN, params={"token_id": api.token_ids[Role.TRADER]}
    ).json()
    assert [(e["event"], e["role"]) for e in mine["items"]] == [("watchlist.added", "trader")]
    assert mine["next_offset"] is None
    backwards = api.get(
        "/api/audit",
        role=Role.ADMIN,
        params={"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "query.until"
    naive = api.get("/api/audit", role=Role.ADMIN, params={"since": "2030-01-01T00:00:00"})
    assert naive.status_code == 422


# Each route that writes, and the audit event its success records (each is asserted in the
# route's own tests). A new mutating route fails here until it says what it records.
AUDITED = {
    ("POST", "/api/jobs"): "job.requested",
    ("POST", "/api/council/synthesize"): "job.requested",
    ("POST", "/api/council/{run_id}/approve"): "council.approval_sent",
    ("POST", "/api/research/generate"): "job.requested",
    ("POST", "/api/pitches/generate"): "job.requested",
    ("POST", "/api/pitches/{pitch_id}/approve"): "pitch.approved",
    ("POST", "/api/trades/execute"): "trade.approved",
    ("POST", "/api/watchlist"): "watchlist.added",
    ("DELETE", "/api/watchlist/{symbol}"): "watchlist.removed",
    ("POST", "/api/trading/halt"): "trading.halted",
    ("POST", "/api/trading/resume"): "trading.resumed",
    ("POST", "/api/conversations"): "conversation.created",
    ("POST", "/api/conversations/{conversation_id}/message"): "chat.answered",
    ("POST", "/api/conversations/{conversation_id}/message/stream"): "chat.answered",
}


def test_every_route_that_writes_names_the_audit_event_it_records() -> None:
    assert {(m, p) for m, p, _ in MUTATING} == set(AUDITED)


def test_cors_lets_the_configured_origins_in_and_no_others(
    api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = api_settings(api_db_url, api_cors_origins=["https://dash.example"])
    with running_api(settings) as api:
        preflight = {
            "Origin": "https://dash.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        allowed = api.request("OPTIONS", "/api/jobs", role=None, headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
        other = api.request(
            "OPTIONS",
            "/api/jobs",
            role=None,
            headers={**preflight, "Origin": "https://evil.example"},
        )
        assert "access-control-allow-origin" not in other.headers
