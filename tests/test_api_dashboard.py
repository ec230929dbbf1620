"""The two small endpoints the dashboard reads for itself: who the caller is, and where the
Prefect UI is (for its links to flow runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.enums import Role
from tests.api_support import Api, api_settings, running_api


@pytest.fixture
def configured_api(
    api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Api]:
    monkeypatch.chdir(tmp_path)
    settings = api_settings(api_db_url, prefect_api_url="http://127.0.0.1:4999/api")
    with running_api(settings) as api:
        yield api


def test_each_token_says_who_it_is_and_a_bad_one_is_refused(configured_api: Api) -> None:
    api = configured_api
    for role in Role:
        me = api.get("/api/auth/me", role=role)
        assert me.status_code == 200, me.text
        assert me.json() == {
            "actor": f"{role}-user",
            "role": str(role),
            "token_id": api.token_ids[role],
        }
    refused = api.get("/api/auth/me", role=None, headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401
    assert api.get("/api/auth/me", role=None).status_code == 401  # not loopback: no anonymous


def test_the_prefect_ui_is_the_configured_api_without_its_path(configured_api: Api) -> None:
    answer = configured_api.get("/api/prefect")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ui_url": "http://127.0.0.1:4999", "source": "PREFECT_API_URL"}
    assert configured_api.get("/api/prefect", role=None).status_code == 401
