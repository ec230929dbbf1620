"""An app that has stopped is freed: nothing module-level keeps it or its runtime.

FastAPI keeps every endpoint it has seen in a module-level cache (4,096 entries).
An endpoint that closed over the app or its metrics (the `/docs` pages, `/metrics`)
kept each stopped app alive with its runtime and database engine: in a test worker,
~150 engines and a heap that grew by ~15,000 objects per test.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api_support import api_settings


def test_a_stopped_app_and_its_runtime_are_freed(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    app = create_app(api_settings(migrated_db_url))
    with TestClient(app) as client:
        for path in ("/docs", "/redoc", "/metrics", "/health"):
            assert client.get(path).status_code == 200, path  # every endpoint seen once
        runtime = app.state.runtime
    refs = {"app": weakref.ref(app), "runtime": weakref.ref(runtime)}
    del app, client, runtime
    gc.collect()
    assert {name for name, ref in refs.items() if ref() is not None} == set()
