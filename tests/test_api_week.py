"""A whole week driven over HTTP, as a user would with curl: start a council job, watch it on
the WebSocket, approve it, then read the orders it placed.

The job runs the real flow in a worker process of the server (JOBS_RUNNER=process) against
the test's Prefect server; the approval resumes the paused flow run through the Prefect API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.enums import Role
from models.ops import AuditEvent
from tests.api_support import Api, api_settings, running_api

UNIVERSE = ["AAPL", "AMZN", "BAC", "GS", "JNJ", "JPM", "MCD", "MSFT", "NVDA", "XOM"]
AS_OF = "2019-06-03"


@pytest.fixture
def week_api(
    api_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Api]:
    monkeypatch.chdir(tmp_path)
    settings = api_settings(
        api_db_url,
        job_poll_interval_ms=100,
        paper_state_dir=tmp_path / "paper",
        jobs_log_dir=tmp_path / "jobs",
        log_level="WARNING",
    )
    with running_api(settings) as api:
        yield api


def _until(what: str, check: Any, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_user_drives_a_week_over_http(week_api: Api, tmp_path: Path) -> None:
    api = week_api
    body = {
        "type": "council",
        "params": {"as_of": AS_OF, "universe": UNIVERSE, "approval": "manual"},
    }
    assert api.post("/api/jobs", json=body, role=Role.VIEWER).status_code == 403
    with api.client.websocket_connect("/ws", headers=api.headers(Role.VIEWER)) as ws:
        ws.send_text(json.dumps({"action": "subscribe", "topics": ["job_updates"]}))
        assert json.loads(ws.receive_text())["type"] == "subscribed"
        started = api.post("/api/jobs", json=body)
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["type"] == "council"
        assert job["runner"] == "process"
        stages: list[str | None] = []
        while "approval" not in stages:
            message = json.loads(ws.receive_text())
            if message["type"] == "job_updates" and message["data"]["id"] == job["id"]:
                assert message["data"]["status"] in {"pending", "running"}, message
                stages.append(message["data"].get("stage"))
    assert "research" in stages or "pitches" in stages  # progress was seen, not just the end

    current = api.get("/api/council/current").json()
    assert current["waiting_for_approval"] is True
    run_id = current["run"]["id"]
    proposed = [d["id"] for d in current["decisions"]]
    assert proposed, "the offline council proposes something on this week"
    rejected = proposed[:1]

    bad = api.post(f"/api/council/{run_id}/approve", json={"reject": [999_999]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.reject"
    approved = api.post(f"/api/council/{run_id}/approve", json={"reject": rejected, "note": "t"})
    assert approved.status_code == 202, approved.text
    assert approved.json()["approver"] == "trader-user"

    def finished() -> dict[str, Any] | None:
        state = api.get(f"/api/jobs/{job['id']}").json()
        return state if state["status"] in {"completed", "failed", "canceled"} else None

    final = _until("the job to finish", finished)
    log = tmp_path / "jobs" / f"job-{job['id']}.log"
    assert final["status"] == "completed", (final, log.read_text() if log.exists() else "")

    again = api.post(f"/api/council/{run_id}/approve", json={})
    assert again.status_code == 409  # not paused any more

    council = api.get(f"/api/council/{run_id}").json()
    statuses = {d["id"]: d["status"] for d in council["decisions"]}
    assert statuses[rejected[0]] == "rejected"
    assert all(statuses[d] == "approved" for d in proposed[1:])
    lines = [line for c in council["chains"] for line in c["execution"]]
    assert {line["account"] for line in lines} == {"paper"}
    sent = [line for line in lines if line["orders"]]
    assert sent, "approved decisions were sent to the paper account"
    for line in lines:
        if not line["orders"]:  # refused before the broker (a sell with shorting off)
            assert line["intent"]["status"] == "risk_rejected"
            assert line["intent"]["reject_reason"]
    assert all(c["llm_calls"] for c in council["chains"]), "decisions link to their prompts"

    costs = api.get(f"/api/council/{run_id}/costs").json()
    assert {line["stage"] for line in costs["lines"]} >= {"research", "pitch", "chairman"}
    assert costs["cost_usd"] == "0" or float(costs["cost_usd"]) == 0.0  # offline: free
    by_stage: list[dict[str, Any]] = costs["stages"]
    assert [s["stage"] for s in by_stage] == ["research", "pitch", "review", "chairman"]
    for cost in by_stage:
        mine = [line for line in costs["lines"] if line["stage"] == cost["stage"]]
        assert cost["calls"] == sum(line["calls"] for line in mine)
        assert cost["prompt_tokens"] == sum(line["prompt_tokens"] for line in mine) > 0
        assert 0 < cost["max_prompt_tokens"] <= cost["prompt_tokens"]

    with api.sessions() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [e.event for e in events if e.token_id == api.token_ids[Role.TRADER]] == [
            "job.requested",
            "council.approval_sent",
        ]
