"""The REST API in tests: the real app (lifespan and all) behind Starlette's TestClient,
with one token per role, on a copy of a database holding the sample bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from services.settings import Settings

REMOTE = ("203.0.113.7", 40000)  # a documentation address: not loopback, so no anonymous read
LOCAL = ("127.0.0.1", 40000)


def api_settings(database_url: str, **overrides: Any) -> Settings:
    """What API tests run with: no pattern engine or books (their own tests cover them),
    no anonymous read, a quick simulator."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "pattern_engine": False,
        "book_feed": "none",
        "sim_interval_ms": 50,
        "sse_interval_ms": 50,
        "gc_full_every_s": 0,
        "api_anonymous_read": False,
        "jobs_runner": "process",
        **overrides,
    }
    return Settings(**values)


@dataclass
class Api:
    """An HTTP client on the app, and a token of each role."""

    client: TestClient
    app: FastAPI
    sessions: sessionmaker[Session]
    tokens: dict[Role, str]
    token_ids: dict[Role, int]

    def headers(self, role: Role | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    def request(
        self, method: str, path: str, *, role: Role | None = Role.VIEWER, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response

    def get(self, path: str, *, role: Role | None = Role.VIEWER, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, role=role, **kwargs)

    def post(self, path: str, *, role: Role | None = Role.TRADER, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, role=role, **kwargs)

    def put(self, path: str, *, role: Role | None = Role.TRADER, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, role=role, **kwargs)

    def delete(
        self, path: str, *, role: Role | None = Role.TRADER, **kwargs: Any
    ) -> httpx.Response:
        return self.request("DELETE", path, role=role, **kwargs)


@contextmanager
def running_api(settings: Settings, client: tuple[str, int] = REMOTE) -> Iterator[Api]:
    """The app started on `settings.database_url` (migrated already), tokens issued."""
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    tokens: dict[Role, str] = {}
    ids: dict[Role, int] = {}
    with unit_of_work(sessions) as session:
        for role in Role:
            issued = issue_token(session, f"{role}-user", role, name=f"test {role}")
            tokens[role], ids[role] = issued.secret, issued.id
    app = create_app(settings)
    try:
        with TestClient(app, client=client, raise_server_exceptions=False) as http:
            yield Api(http, app, sessions, tokens, ids)
    finally:
        engine.dispose()


def api_after_a_council(
    db_url: str,
    monkeypatch: Any,
    tmp_path: Any,
    as_of: Any,
    universe: list[str],
) -> Iterator[Api]:
    """The API on `db_url` after the offline council sat on `as_of` over `universe`
    (approval auto, nothing executed), in the flow's own process settings."""
    import asyncio

    from flows.weekly_council import weekly_council
    from services.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    get_settings.cache_clear()

    async def sit() -> Any:
        return await weekly_council(
            as_of=as_of, universe=universe, approval="auto", execute=False, return_state=True
        )

    state = asyncio.run(sit())
    assert state.is_completed(), state
    with running_api(api_settings(db_url, jobs_log_dir=tmp_path / "jobs")) as api:
        yield api
    get_settings.cache_clear()
