"""The weekly council flow under a real (temporary) Prefect server, on SQLite and Postgres.

The offline analyst runs it end to end on the sample data; a priced model is
the fake OpenAI server answering through litellm with the offline analyst's
own answers, which is how replay at $0 and the budget stop are shown.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from sqlalchemy import Engine, func, select

from db.engine import make_session_factory, unit_of_work
from db.queries import council as q
from db.queries.trading import positions
from flows.weekly_council import weekly_council
from models.bus import JOBS_UPDATES
from models.council import CouncilDecision, CouncilRun
from models.enums import DecisionStatus, LLMCallStatus, OrderLeg, OrderStatus, RunStatus, Side
from models.ops import AuditEvent, Job, LLMCall
from models.trading import Order, PortfolioSnapshot, TradeIntent
from services.bus import RedisStreamsBus
from services.llm.offline import answer_council_prompt
from services.settings import get_settings
from tasks.bar_validation import ConflictRule
from tasks.council.roster import Member, Role
from tasks.import_bars import import_bar_file
from tests.conftest import IN_CI
from tests.fake_openai import FakeOpenAI, Responder

AS_OF = date(2019, 6, 3)
UNIVERSE = ["AAPL", "AMZN", "BAC", "GS", "JNJ", "JPM", "MCD", "MSFT", "NVDA", "XOM"]
PRICED = "openai/gpt-4o-mini"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def db(flow_db: Engine) -> Engine:
    """A database holding the sample bars, which the flow finds through settings."""
    return flow_db


def _run(**kwargs: Any) -> Any:
    options: dict[str, Any] = {"as_of": AS_OF, "universe": UNIVERSE, "approval": "auto"} | kwargs
    return asyncio.run(_call(options))


async def _call(options: dict[str, Any]) -> Any:
    return await weekly_council(**options, return_state=True)


def _summary(state: Any) -> dict[str, Any]:
    """The flow's summary (the data of its final state; sync outside an event loop)."""
    value = state.result()
    assert isinstance(value, dict), value
    return value


def _decisions(engine: Engine, run_id: int) -> list[tuple[str, str, Decimal, str]]:
    with make_session_factory(engine)() as session:
        return [
            (d.symbol, str(d.action), d.target_weight, str(d.status))
            for d in q.decision_rows(session, run_id)
        ]


def test_the_offline_council_decides_a_past_week_end_to_end(db: Engine) -> None:
    state = _run()
    assert state.is_completed(), state.message
    summary = _summary(state)
    run_id = summary["council_run_id"]
    decisions = _decisions(db, run_id)
    assert decisions, "the sample week should produce at least one trade"
    assert all(status == "approved" for *_, status in decisions)
    assert sum(w for _, _, w, _ in decisions) <= 1
    with make_session_factory(db)() as session:
        run = session.get(CouncilRun, run_id)
        assert run is not None
        assert run.status is RunStatus.COMPLETED
        assert run.data_hash == summary["data_hash"]
        assert run.cost_usd == 0  # the offline analyst is free, and its records say offline
        providers = set(session.scalars(select(LLMCall.provider).where(LLMCall.run_id == run_id)))
        assert providers == {"offline"}
        pitches = q.pitch_rows(session, run_id)
        assert pitches
        reviews = q.review_rows(session, run_id)
        assert reviews
        assert all(r.pitch_id in {p.id for p in pitches} for r in reviews)
        # a reviewer never reviews its own pitch
        authors = {p.id: p.pm for p in pitches}
        assert all(authors[r.pitch_id] != r.reviewer for r in reviews)
        job = session.scalars(select(Job).where(Job.type == "council")).one()
        assert job.status is RunStatus.COMPLETED
        assert job.result is not None
        assert job.result["stage"] == "done"

        chain = q.audit_chain(session, session.scalars(select(CouncilDecision.id)).first() or 0)
    assert chain["data_hash"] == summary["data_hash"]
    assert chain["pitch"] is not None
    assert chain["votes"]
    assert chain["research"]
    stages = {c["stage"] for c in chain["llm_calls"]}
    assert {"research", "pitch", "review", "chairman"} <= stages


def test_an_auto_approved_council_ends_with_paper_positions(db: Engine) -> None:
    summary = _summary(_run())
    approved = {d["decision"]: d for d in summary["decisions"] if d["approved"]}
    lines = summary["orders"]
    assert {line["decision"] for line in lines} == set(approved)
    assert all(line["account"] == "paper" for line in lines)
    with make_session_factory(db)() as session:
        filled = session.scalars(
            select(Order).where(Order.leg == OrderLeg.ENTRY, Order.status == OrderStatus.FILLED)
        ).all()
        held = {p.symbol: p.qty for p in positions(session)}
        snapshot = session.scalars(select(PortfolioSnapshot)).first()
        legs = session.scalars(select(Order).where(Order.parent_id.is_not(None))).all()
    assert filled, json.dumps(lines, indent=1)
    for order in filled:
        want = order.qty if order.side is Side.BUY else -order.qty
        assert held[order.symbol] == want
        assert approved[_decision_of(db, order.intent_id)]["symbol"] == order.symbol
    # each filled bracket entry left its two exits working at the broker, recorded as legs
    assert len(legs) == 2 * len(filled)
    assert {leg.status for leg in legs} == {OrderStatus.ACCEPTED}
    assert snapshot is not None
    assert snapshot.equity > 0


def _decision_of(engine: Engine, intent_id: int | None) -> int:
    with make_session_factory(engine)() as session:
        intent = session.get(TradeIntent, intent_id)
        assert intent is not None
        assert intent.decision_id is not None
        return intent.decision_id


def test_a_bar_from_after_as_of_changes_nothing(db: Engine, tmp_path: Path) -> None:
    first = _summary(_run())
    absurd = tmp_path / "absurd.csv"
    absurd.write_text(
        "date,symbol,open,high,low,close,volume\n"
        "2019-06-04,NVDA,1000000,1000000,1000000,1000000,1\n"  # the day after as_of
        "2019-06-05,MSFT,0.01,0.01,0.01,0.01,1\n"
    )
    with unit_of_work(make_session_factory(db)) as session:
        report = import_bar_file(session, absurd, on_conflict=ConflictRule.LAST)
    assert report.updated == 2  # the bars are in the database: only point in time keeps them out
    second = _summary(_run())
    assert second["data_hash"] == first["data_hash"]
    strip = ("decision", "status", "approved")
    assert [{k: v for k, v in d.items() if k not in strip} for d in second["decisions"]] == [
        {k: v for k, v in d.items() if k not in strip} for d in first["decisions"]
    ]


def test_a_replayed_week_gives_the_same_decision_at_no_new_cost(
    db: Engine, priced_llm: FakeOpenAI
) -> None:
    first = _summary(_run(models=[PRICED]))
    calls = len(priced_llm.requests)
    assert calls > 0
    assert Decimal(first["cost_usd"]) > 0
    again = _summary(_run(models=[PRICED]))
    assert len(priced_llm.requests) == calls  # not one request more
    assert Decimal(again["cost_usd"]) == 0
    assert [(d["symbol"], d["action"], d["weight"]) for d in again["decisions"]] == [
        (d["symbol"], d["action"], d["weight"]) for d in first["decisions"]
    ]
    with make_session_factory(db)() as session:
        hits = session.scalars(
            select(LLMCall.cache_hit).where(LLMCall.run_id == again["council_run_id"])
        ).all()
    assert hits
    assert all(hits)


def test_a_run_stops_cleanly_on_its_budget(db: Engine, priced_llm: FakeOpenAI) -> None:
    # Research fits (two analysts, one call each for ten symbols, reserve ~$0.0055 with
    # 4,000 answer tokens each and spend far less); four pitches (~$0.0016 each) do not.
    state = _run(models=[PRICED], budget_usd=0.0058)
    assert state.is_cancelled()
    assert "budget" in (state.message or "")
    with make_session_factory(db)() as session:
        run = session.scalars(select(CouncilRun)).one()
        assert run.status is RunStatus.CANCELED
        assert run.detail is not None
        assert "no decision" in run.detail
        assert session.scalar(select(func.count()).select_from(CouncilDecision)) == 0
        assert run.cost_usd <= Decimal("0.0058")
        assert run.cost_usd > 0


def test_an_unpriced_model_under_a_budget_ends_the_run_and_its_job_failed_with_the_cause(
    db: Engine, priced_llm: FakeOpenAI
) -> None:
    # litellm has no price for this model, so a budget cannot be enforced: every member's
    # first call refuses, in parallel (an ExceptionGroup), and the run must say why.
    state = _run(models=["openai/no-such-priced-model"], budget_usd=1.0)
    assert state.is_failed()
    with make_session_factory(db)() as session:
        run = session.scalars(select(CouncilRun)).one()
        job = session.get(Job, run.job_id)
        assert job is not None
        assert run.status is RunStatus.FAILED
        assert job.status is RunStatus.FAILED
        for cause in (run.detail, job.error):
            assert cause is not None
            assert "no price for model 'openai/no-such-priced-model'" in cause
            assert "ExceptionGroup" not in cause
        assert run.finished_at is not None
        assert job.finished_at is not None
    assert priced_llm.requests == []  # refused before anything was sent


def test_a_member_whose_answer_stays_invalid_abstains_and_the_council_goes_on(
    db: Engine, priced_llm: FakeOpenAI
) -> None:
    def answer(body: dict[str, Any]) -> str:
        content = body["messages"][-1]["content"]
        if '"member": "analyst-momentum"' in content or "could not be used" in content:
            return '{"regime": "fine"'  # malformed, and again after the repair request
        return answer_council_prompt("offline/analyst", body["messages"])

    priced_llm.reset(default=Responder(answer))
    state = _run(models=[PRICED])
    assert state.is_completed()
    with make_session_factory(db)() as session:
        rows = session.execute(
            select(LLMCall.member, LLMCall.status).where(LLMCall.stage == "research")
        ).all()
        statuses: dict[str, LLMCallStatus] = {member: status for member, status in rows}
    assert statuses["analyst-momentum"] is LLMCallStatus.PARSE_ERROR
    assert statuses["analyst-risk_parity"] is LLMCallStatus.OK


def test_manual_approval_pauses_until_an_approver_answers(db: Engine) -> None:
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["state"] = _run(approval="manual")

    worker = threading.Thread(target=run)
    worker.start()
    sessions = make_session_factory(db)
    run_row = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sessions() as session:
            run_row = session.scalars(select(CouncilRun)).first()
            decided = run_row and q.decision_rows(session, run_row.id)
        if run_row is not None and decided and _paused(run_row.flow_run_id):
            break
        time.sleep(0.5)
    assert run_row is not None
    assert run_row.flow_run_id is not None
    with sessions() as session:
        proposed = q.decision_rows(session, run_row.id)
    assert {d.status for d in proposed} == {DecisionStatus.PROPOSED}
    rejected = proposed[0].id
    asyncio.run(
        _resume(
            run_row.flow_run_id, {"reject": [rejected], "note": "too big", "approver": "tester"}
        )
    )
    worker.join(timeout=60)
    assert outcome["state"].is_completed()
    with sessions() as session:
        after = {d.id: d for d in q.decision_rows(session, run_row.id)}
    assert after[rejected].status is DecisionStatus.REJECTED
    assert after[rejected].note == "too big"
    assert all(
        d.status is DecisionStatus.APPROVED and d.approved_by == "tester"
        for i, d in after.items()
        if i != rejected
    )


def _paused(flow_run_id: str | None) -> bool:
    if flow_run_id is None:
        return False

    async def state() -> bool:
        async with get_client() as client:
            flow_run = await client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
            return bool(flow_run.state and flow_run.state.is_paused())

    return asyncio.run(state())


async def _resume(flow_run_id: str, answer: dict[str, Any]) -> None:
    from uuid import UUID

    await resume_flow_run(UUID(flow_run_id), run_input=answer)  # type: ignore[misc]


@pytest.mark.redis
def test_with_redis_each_stage_is_announced_on_jobs_updates(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.ConnectionError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} unreachable: {exc} (CI=true)", pytrace=False)
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    get_settings.cache_clear()

    async def newest() -> str:
        bus = RedisStreamsBus(REDIS_URL)
        try:
            return await bus.latest_id(JOBS_UPDATES)
        finally:
            await bus.close()

    async def since(position: str) -> list[dict[str, Any]]:
        bus = RedisStreamsBus(REDIS_URL)
        try:
            entries = await bus.tail(JOBS_UPDATES, last_id=position, block_ms=0, count=1000)
            return [e.message.data for e in entries]
        finally:
            await bus.close()

    start = asyncio.run(newest())
    state = _run()
    flow_run_id = str(state.state_details.flow_run_id)
    # by flow run: the SQLite and Postgres runs of this test share the stream and run ids
    mine = [m for m in asyncio.run(since(start)) if m["flow_run_id"] == flow_run_id]
    assert [m["stage"] for m in mine] == [
        "started",
        "snapshot",
        "research",
        "pitches",
        "review",
        "chairman",
        "execution",
        "done",
    ]
    assert mine[-1]["status"] == "completed"


def test_a_chairman_call_on_something_never_pitched_is_rejected_and_recorded(
    db: Engine, priced_llm: FakeOpenAI
) -> None:
    def answer(body: dict[str, Any]) -> str:
        content = answer_council_prompt("offline/analyst", body["messages"])
        if '"stage": "chairman"' not in body["messages"][-1]["content"]:
            return content
        verdict = json.loads(content)
        verdict["calls"].append(
            {
                "symbol": "ZZZZ",
                "action": "buy",
                "conviction": "0.9",
                "target_weight": "0.000001",
                "rationale": "a hunch",
                "pitch": "ZZ",
            }
        )
        return json.dumps(verdict)

    priced_llm.reset(default=Responder(answer))
    summary = _summary(_run(models=[PRICED]))
    assert "ZZZZ" not in {d["symbol"] for d in summary["decisions"]}
    with make_session_factory(db)() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "chairman.call_rejected")
        ).all()
    assert len(events) == 1
    assert events[0].entity_id == str(summary["council_run_id"])
    assert events[0].payload["call"]["symbol"] == "ZZZZ"
    assert "was not shown" in events[0].payload["reason"]


def test_a_council_of_your_own_members_sits(db: Engine) -> None:
    members = [
        Member(name="quant", role=Role.ANALYST, persona="momentum", model="offline/momentum"),
        Member(name="pm-a", role=Role.PM, persona="momentum", model="offline/momentum"),
        Member(name="pm-b", role=Role.PM, persona="risk_parity", model="offline/risk_parity"),
        Member(name="chair", role=Role.CHAIRMAN, persona="chairman", model="offline/analyst"),
    ]
    summary = _summary(_run(members=members))
    with make_session_factory(db)() as session:
        asked = set(
            session.scalars(
                select(LLMCall.member).where(LLMCall.run_id == summary["council_run_id"])
            )
        )
        run = session.get(CouncilRun, summary["council_run_id"])
    assert asked == {"quant", "pm-a", "pm-b", "chair"}
    assert run is not None
    assert run.params is not None
    assert [m["name"] for m in run.params["roster"]] == ["quant", "pm-a", "pm-b", "chair"]
