"""Research and pitches over HTTP: on a week the offline council really sat, and on
council rows stored directly (tests/council_factories.py) for the cases a sitting
does not produce on demand (a failed run, a forged figure, weeks of runs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.engine import unit_of_work
from models.council import Pitch, ResearchReport
from models.enums import Role, RunStatus
from models.ops import AuditEvent, LLMCall
from tasks.market_snapshot import build_snapshot
from tests.api_support import Api, api_after_a_council
from tests.council_factories import (
    make_call,
    make_decision,
    make_pitch,
    make_report,
    make_review,
    make_run,
)

AS_OF = date(2019, 6, 3)
UNIVERSE = ["AAPL", "JPM", "MSFT", "NVDA", "XOM"]


@pytest.fixture
def council_api(
    api_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Api]:
    yield from api_after_a_council(api_db_url, monkeypatch, tmp_path, AS_OF, UNIVERSE)


def test_research_reads_verifies_and_shows_its_prompt(council_api: Api) -> None:
    api = council_api
    current = api.get("/api/research/current").json()
    assert current["status"] == "completed"
    assert {r["symbol"] for r in current["reports"]} == set(UNIVERSE)
    assert api.get("/api/research/latest").json()["run_id"] == current["run_id"]
    history = api.get("/api/research/history").json()
    [week] = history["items"]
    assert (week["week"], [r["run_id"] for r in week["runs"]]) == ("2019-W23", [current["run_id"]])
    assert week["runs"][0]["reports"] == len(current["reports"])
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
    asked = api.get(
        "/api/research/prompt",
        params={"as_of": str(AS_OF), "symbols": ",".join(UNIVERSE), "analyst": first["analyst"]},
    ).json()
    assert asked["prompt_hash"] == report["llm_call"]["prompt_hash"]  # the very messages sent
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


# Below: council rows stored directly (tests/council_factories.py), on the plain `api`.


def test_research_and_pitches_read_the_newest_run_and_404_before_any(api: Api) -> None:
    for path in ("/api/research/current", "/api/research/latest", "/api/pitches/current"):
        assert api.get(path).status_code == 404, path
    assert api.get("/api/research/history").json()["items"] == []
    with unit_of_work(api.sessions) as session:
        done = make_run(session)
        make_report(session, done, symbol="AAPL")
        make_report(session, done, symbol="MSFT")
        older = make_pitch(session, done, symbol="MSFT")
        failed = make_run(session, as_of=datetime(2019, 6, 11, tzinfo=UTC), status=RunStatus.FAILED)
        make_report(session, failed, symbol="AAPL")
        taken = make_pitch(session, failed, conviction=Decimal("0.7"))
        make_review(session, taken, reviewer="pm-value", score=Decimal("0.8"), label="B")
        make_review(session, taken, reviewer="pm-macro", score=Decimal("0.6"), label="A")
        decision = make_decision(session, taken, votes={"borda": 3, "mean_score": "0.7"})
        make_pitch(session, failed, symbol="MSFT", dropped_reason="stop above entry")
        make_run(session, as_of=datetime(2019, 6, 18, tzinfo=UTC), status=RunStatus.RUNNING)
        ids = done.id, failed.id, older.id, taken.id, decision.id

    done_id, failed_id, older_id, taken_id, decision_id = ids
    current = api.get("/api/research/current").json()
    assert (current["run_id"], current["status"]) == (failed_id, "failed")
    assert current["as_of"] == "2019-06-11T00:00:00Z"
    assert [r["symbol"] for r in current["reports"]] == ["AAPL"]
    latest = api.get("/api/research/latest").json()
    assert (latest["run_id"], latest["status"]) == (done_id, "completed")
    assert [r["symbol"] for r in latest["reports"]] == ["AAPL", "MSFT"]

    pitches = api.get("/api/pitches/current").json()
    assert pitches["run_id"] == failed_id
    live, dropped = pitches["pitches"]
    assert older_id not in {live["id"], dropped["id"]}
    assert (live["id"], live["pm"], live["symbol"], live["side"]) == (
        taken_id,
        "pm-momentum",
        "AAPL",
        "buy",
    )
    assert [Decimal(live[k]) for k in ("entry_price", "take_profit", "stop_loss")] == [
        Decimal("173.30"),
        Decimal("190"),
        Decimal("165"),
    ]
    assert Decimal(live["mean_score"]) == Decimal("0.7")
    assert sorted((r["label"], Decimal(r["score"])) for r in live["reviews"]) == [
        ("A", Decimal("0.6")),
        ("B", Decimal("0.8")),
    ]
    assert live["decision"]["id"] == decision_id
    assert live["decision"]["votes"] == {"borda": 3, "mean_score": "0.7"}
    assert dropped["dropped_reason"] == "stop above entry"
    assert (dropped["reviews"], dropped["mean_score"], dropped["decision"]) == ([], None, None)


def test_history_is_a_calendar_of_iso_weeks_paged_by_week(api: Api) -> None:
    with unit_of_work(api.sessions) as session:
        monday = make_run(session, as_of=datetime(2019, 6, 4, tzinfo=UTC))  # Mon 3 June's close
        make_report(session, monday)
        friday = make_run(session, as_of=datetime(2019, 6, 8, tzinfo=UTC), cost_usd=Decimal(0))
        next_week = make_run(session, as_of=datetime(2019, 6, 15, tzinfo=UTC))
        new_year = make_run(session, as_of=datetime(2020, 1, 1, tzinfo=UTC))  # 31 Dec's close
        ids = monday.id, friday.id, next_week.id, new_year.id

    monday_id, friday_id, next_week_id, new_year_id = ids
    weeks = api.get("/api/research/history").json()
    assert [(w["week"], w["starts"]) for w in weeks["items"]] == [
        ("2020-W01", "2019-12-30"),
        ("2019-W24", "2019-06-10"),
        ("2019-W23", "2019-06-03"),
    ]
    w23 = weeks["items"][2]["runs"]
    assert [(r["run_id"], r["reports"]) for r in w23] == [(friday_id, 0), (monday_id, 1)]
    assert (w23[1]["status"], Decimal(w23[1]["cost_usd"])) == ("completed", Decimal("0.0123"))
    assert weeks["next_offset"] is None

    first = api.get("/api/research/history", params={"limit": 1}).json()
    assert [r["run_id"] for r in first["items"][0]["runs"]] == [new_year_id]
    assert first["next_offset"] == 1
    last = api.get("/api/research/history", params={"limit": 1, "offset": 2}).json()
    assert [w["week"] for w in last["items"]] == ["2019-W23"]
    assert last["next_offset"] is None
    june = api.get(
        "/api/research/history",
        params={"since": "2019-06-09T00:00:00Z", "until": "2019-12-01T00:00:00Z"},
    ).json()
    assert [[r["run_id"] for r in w["runs"]] for w in june["items"]] == [[next_week_id]]

    backwards = api.get(
        "/api/research/history",
        params={"since": "2019-06-09T00:00:00Z", "until": "2019-06-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
    assert [e["field"] for e in backwards.json()["errors"]] == ["query.until"]
    naive = api.get("/api/research/history", params={"since": "2019-06-09T00:00:00"})
    assert [e["field"] for e in naive.json()["errors"]] == ["query.since"]


def test_a_report_verifies_against_the_data_its_run_saw_and_a_wrong_figure_fails(
    api: Api,
) -> None:
    with api.sessions() as session:
        snapshot = build_snapshot(session, ["AAPL", "MSFT"], AS_OF)
    aapl = next(m for m in snapshot.symbols if m.symbol == "AAPL")
    assert aapl.ret_5d is not None
    quoted = [f"close {aapl.close:.2f}", f"5d return {aapl.ret_5d:+.1%}", "below its SMA50"]
    with unit_of_work(api.sessions) as session:
        run = make_run(session, data_hash=snapshot.data_hash)
        call = make_call(session, run)
        honest = make_report(session, run, evidence=quoted, call=call)
        lying = make_report(session, run, evidence=[quoted[0], "5d return +9.9%"])
        stale = make_run(session, data_hash="0" * 64)
        unchecked = make_report(session, stale, evidence=quoted)
        ids = honest.id, lying.id, unchecked.id, call.id
        events = session.scalar(select(func.count()).select_from(AuditEvent))

    honest_id, lying_id, unchecked_id, call_id = ids
    report = api.get(f"/api/research/report/{honest_id}").json()
    assert report["findings"]["evidence"] == quoted
    assert report["llm_call"]["id"] == call_id
    assert (report["llm_call"]["model"], report["llm_call"]["prompt_hash"]) == (
        "openai/gpt-4o-mini",
        "ab" * 32,
    )
    assert (report["llm_call"]["prompt_tokens"], report["llm_call"]["completion_tokens"]) == (
        1800,
        400,
    )
    assert Decimal(report["llm_call"]["cost_usd"]) == Decimal("0.0005")
    assert api.get(f"/api/research/report/{lying_id}").json()["llm_call"] is None
    assert api.get("/api/research/report/999999").status_code == 404
    for bad in ("0", "abc"):
        answer = api.get(f"/api/research/report/{bad}")
        assert answer.status_code == 422
        assert [e["field"] for e in answer.json()["errors"]] == ["path.report_id"]

    verdict = api.post("/api/research/verify", json={"report_id": honest_id}, role=Role.VIEWER)
    assert verdict.status_code == 200, verdict.text
    body = verdict.json()
    assert (body["data_unchanged"], body["verified"], body["unsupported"]) == (True, True, [])
    assert [(f["text"], f["matches"]) for f in body["figures"]] == [
        (f"{aapl.close:.2f}", ["close"]),
        (f"{aapl.ret_5d * 100:+.1f}%", ["ret_5d"]),
    ]
    wrong = api.post("/api/research/verify", json={"report_id": lying_id}).json()
    assert (wrong["data_unchanged"], wrong["verified"]) == (True, False)
    assert wrong["unsupported"] == ["+9.9%"]
    moved = api.post("/api/research/verify", json={"report_id": unchecked_id}).json()
    assert moved["data_hash_recorded"] == "0" * 64
    assert moved["data_hash_recomputed"] == snapshot.data_hash
    assert (moved["data_unchanged"], moved["unsupported"], moved["verified"]) == (False, [], False)

    assert api.post("/api/research/verify", json={"report_id": 999999}).status_code == 404
    for body_in, field in [
        ({"report_id": 0}, "body.report_id"),
        ({}, "body.report_id"),
        ({"report_id": honest_id, "fix": True}, "body.fix"),
    ]:
        answer = api.post("/api/research/verify", json=body_in)
        assert answer.status_code == 422, body_in
        assert [e["field"] for e in answer.json()["errors"]] == [field], body_in
    with api.sessions() as session:  # a check, not a change: nothing recorded
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == events


def test_the_prompt_is_built_from_the_snapshot_without_calling_a_model(api: Api) -> None:
    params = {"as_of": "2019-06-03", "symbols": "MSFT,aapl"}
    prompt = api.get("/api/research/prompt", params=params)
    assert prompt.status_code == 200, prompt.text
    body = prompt.json()
    snapshot = api.get("/api/market/snapshot", params=params).json()
    assert body["data_hash"] == snapshot["data_hash"]
    assert body["as_of"] == "2019-06-04T00:00:00Z"
    system, user = body["messages"]
    assert (system["role"], user["role"]) == ("system", "user")
    assert body["analyst"] in system["content"]
    assert '"AAPL"' in user["content"]
    assert '"NVDA"' not in user["content"]  # only the universe asked for
    assert len(body["prompt_hash"]) == 64
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LLMCall)) == 0
    for params, field in [
        ({"analyst": "nobody"}, "query.analyst"),
        ({"symbols": "AAPL,ZZZZ"}, "query.symbols"),
        ({"as_of": "2019-13-01"}, "query.as_of"),
    ]:
        answer = api.get("/api/research/prompt", params=params)
        assert answer.status_code == 422, params
        assert [e["field"] for e in answer.json()["errors"]] == [field], params
