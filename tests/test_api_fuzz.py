"""Schemathesis over `/openapi.json`: every operation, generated inputs valid and invalid,
sent to the real server over loopback with an admin token. No answer may be a 5xx.

Bounded (`EXAMPLES` per operation) to keep the suite's time; CI runs it on both databases.
The price stream never ends, so it is left to its own tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.core.result import Ok

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from tests.api_support import api_settings
from tests.live_server import serve_in_thread

EXAMPLES = 15
ENDLESS = {"/api/stream/prices"}
PROBES = {"/health", "/ready", "/health/db", "/health/redis", "/health/services"}


@pytest.fixture
def live_api(
    api_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    from prefect.settings import PREFECT_API_URL

    from tests.test_api_jobs import deploy_backtest, deploy_council, deploy_model_jobs

    asyncio.run(deploy_council())  # jobs become scheduled flow runs; no worker runs them
    asyncio.run(deploy_backtest())
    asyncio.run(deploy_model_jobs())
    monkeypatch.chdir(tmp_path)
    engine = make_engine(api_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        token = issue_token(session, "fuzzer", Role.ADMIN).secret
    engine.dispose()
    app_settings = api_settings(
        api_db_url,
        api_llm_rate_per_minute=10_000,
        jobs_runner="deployment",
        prefect_api_url=PREFECT_API_URL.value(),
        paper_state_dir=tmp_path / "paper",
        log_level="CRITICAL",
    )
    with serve_in_thread(create_app(app_settings)) as url:
        yield url, token


def test_no_generated_request_gets_a_server_error(live_api: tuple[str, str]) -> None:
    url, token = live_api
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    errors: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation the schema could not describe
        operation = result.ok()
        if (
            operation.path in ENDLESS | PROBES
        ):  # probes answer 503 by design when a dependency is down
            continue
        checked += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), _=st.just(None))
        def call(case: Case[Any], _: None) -> None:
            response = case.call(base_url=url, headers=headers, timeout=30)
            if response.status_code >= 500:
                errors.append(
                    f"{case.method} {case.formatted_path} {case.query or ''} "
                    f"{case.body!r:.200} -> {response.status_code} {response.text[:300]}"
                )

        call()
    assert checked > 20
    assert errors == []
