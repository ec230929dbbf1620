"""Research and pitches over HTTP, on a week the offline council really sat."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from db.engine import unit_of_work
from models.council import Pitch, ResearchReport
from models.enums import Role
from services.settings import get_settings
from tests.api_support import Api, api_settings, running_api

AS_OF = date(2019, 6, 3)
UNIVERSE = ["AAPL", "JPM", "MSFT", "NVDA", "XOM"]


@pytest.fixture
def council_api(
    api_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Api]:
    from flows.weekly_council import weekly_council

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", api_db_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    get_settings.cache_clear()

    async def sit() -> Any:
        return await weekly_council(
            as_of=AS_OF, universe=UNIVERSE, approval="auto", execute=False, return_state=True
        )

    state = asyncio.run(sit())
    assert state.is_completed(), state
    with running_api(api_settings(api_db_url, jobs_log_dir=tmp_path / "jobs")) as api:
        yield api
    get_settings.cache_clear()


def test_research_reads_verifies_and_shows_its_prompt(council_api: Api) -> None:
    api = council_api
    current = api.get("/api/research/current").json()
    assert current["status"] == "completed"
    assert {r["symbol"] for r in current["reports"]} == set(UNIVERSE)
    assert api.get("/api/research/latest").json()["run_id"] == current["run_id"]
    history = api.get("/api/research/history").json()
    assert [(w["week"], w["run_id"]) for w in history["items"]] == [("2019-W23", current["run_id"])]
    assert history["items"][0]["reports"] == len(current["reports"])
    assert (
        api.get("/api/research/history", params={"until": "2019-01-01T00:00:00Z"}).json()["items"]
        == []
    )

    first = current["reports"][0]
    report = api.get(f"/api/research/report/{first['id']}").json()
    assert report["llm_call"]["model"].startswith("offline/")
    assert report["llm_call"]["stage"] == "research"
    assert api.get("/api/research/report/999999").status_code == 404

    verdict = api.post("/api/research/verify", json={"report_id": first["id"]}, role=Role.VIEWER)
    assert verdict.status_code == 200, verdict.text
    body = verdict.json()
    assert body["data_unchanged"] is True
    assert body["figures"], "the offline analyst quotes its figures"
    assert body["unsupported"] == []
    assert body["verified"] is True
    with unit_of_work(api.sessions) as session:
        row = session.get(ResearchReport, first["id"])
        assert row is not None
        row.findings = {**row.findings, "evidence": [*row.findings["evidence"], "close 9999.99"]}
    forged = api.post("/api/research/verify", json={"report_id": first["id"]}).json()
    assert forged["unsupported"] == ["9999.99"]
    assert forged["verified"] is False
    missing = api.post("/api/research/verify", json={"report_id": 0})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "body.report_id"

    prompt = api.get(
        "/api/research/prompt", params={"as_of": str(AS_OF), "symbols": ",".join(UNIVERSE)}
    ).json()
    assert [m["role"] for m in prompt["messages"]] == ["system", "user"]
    assert prompt["analyst"] in prompt["messages"][0]["content"]
    assert prompt["data_hash"] == body["data_hash_recorded"]  # the run saw exactly this data
    assert "notes" in prompt["response_schema"]["properties"]
    nobody = api.get("/api/research/prompt", params={"analyst": "nobody"})
    assert nobody.status_code == 422
    assert nobody.json()["errors"][0]["field"] == "query.analyst"
    assert api.get("/api/research/status").status_code == 404


def test_pitches_show_their_reviews_and_an_approved_one_becomes_a_checked_trade(
    council_api: Api,
) -> None:
    api = council_api
    current = api.get("/api/pitches/current").json()
    pitches = current["pitches"]
    assert pitches
    reviewed = [p for p in pitches if p["reviews"]]
    assert reviewed, "live pitches were peer reviewed"
    assert all(r["label"] for p in reviewed for r in p["reviews"])
    assert any(p["decision"] for p in pitches), "the chairman decided on some"
    live = next(p for p in pitches if p["dropped_reason"] is None)

    assert (
        api.post(f"/api/pitches/{live['id']}/approve", json={}, role=Role.VIEWER).status_code == 403
    )
    assert api.post("/api/pitches/999999/approve", json={}).status_code == 404
    bad = api.post(f"/api/pitches/{live['id']}/approve", json={"qty": 0})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.qty"
    taken = api.post(f"/api/pitches/{live['id']}/approve", json={"qty": 3, "execute": False})
    assert taken.status_code == 200, taken.text
    [outcome] = taken.json()
    assert outcome["symbol"] == live["symbol"]
    assert outcome["status"] in {"pending_approval", "risk_rejected"}
    if outcome["status"] == "risk_rejected":  # a 2019 bracket against today's price
        assert outcome["reason"]
    again = api.post(f"/api/pitches/{live['id']}/approve", json={"qty": 3, "execute": False})
    assert [o["intent_id"] for o in again.json()] == [outcome["intent_id"]]

    with unit_of_work(api.sessions) as session:
        dropped = session.scalars(select(Pitch).where(Pitch.id == live["id"])).one()
        dropped.dropped_reason = "entry 12% from the last close"
    refused = api.post(f"/api/pitches/{live['id']}/approve", json={"qty": 1, "execute": False})
    assert refused.status_code == 409
    assert "was dropped" in refused.json()["detail"]
    assert api.get("/api/pitches/status").status_code == 404
