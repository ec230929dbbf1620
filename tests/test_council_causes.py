"""Why a council run has no decision, per stage, in `aitrader council show` and
`GET /api/council/{id}`: who answered, who was repaired, who abstained and why.

The causes are read from what the gateway stored, so the tests make the real
gateway store them: a council sat against the fake OpenAI server with PMs
scripted to fail, a run stopped on its budget, and single calls that meet a
429, a timeout or a 503. What no sitting produces on demand (a refused
ballot, a waiting approval, a stop after research) is summarised from facts
built by hand.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.council_causes import (
    CallFact,
    DecisionFact,
    IntentFact,
    PitchFact,
    Seat,
    StoredRun,
)
from db.queries.llm_calls import SqlCallStore
from models.council import CouncilRun
from models.enums import DecisionStatus, IntentStatus, LLMCallStatus, RunStatus, Side
from services.llm.gateway import CallContext, LLMGateway
from services.llm.offline import answer_council_prompt
from services.llm.retry import RetryPolicy
from tasks.council.causes import Answer, Cause, StageState, classify
from tasks.council.stage_report import run_report, summarise
from tests.api_support import api_settings, running_api
from tests.conftest import Run
from tests.council_factories import make_run
from tests.fake_openai import (
    Behaviour,
    FakeOpenAI,
    RateLimited,
    Reply,
    Responder,
    ServerError,
    Slow,
    fake_openai,
)

AS_OF = "2019-06-03"
PRICED = "openai/gpt-4o-mini"
STAGES = ["research", "pitches", "review", "chairman", "approval", "execution"]


def _pms_fail(body: dict[str, Any]) -> str:
    """Analysts answer as the offline analyst would; each PM fails its own way, one of them
    only until it is shown its error (then it pitches nothing, a valid answer)."""
    messages = body["messages"]
    system = next(m["content"] for m in messages if m["content"].startswith("You are"))
    repair = "could not be used" in messages[-1]["content"]
    if "portfolio manager" not in system:
        return answer_council_prompt("offline/analyst", messages)
    if "pm-momentum" in system:
        return json.dumps({"pitches": []}) if repair else "{not json"
    if "pm-mean_reversion" in system:
        return "{still not json"
    if "pm-risk_parity" in system:
        return json.dumps({"pitches": "many"})
    return ""


def _flat(out: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(out.split())


def _last_run(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            run_id = session.scalar(select(func.max(CouncilRun.id)))
    finally:
        engine.dispose()
    assert run_id is not None
    return run_id


def test_a_run_whose_pms_all_fail_says_why_it_has_no_decision_in_the_cli_and_the_api(
    aitrader: Run, priced_llm: FakeOpenAI, sample_db: str
) -> None:
    priced_llm.reset(default=Responder(_pms_fail))
    code, out = aitrader(
        "council", "run", "--as-of", AS_OF, "--approval", "auto", "--models", PRICED
    )
    assert code == 0, out
    run_id = _last_run(sample_db)

    code, out = aitrader("council", "show", str(run_id))
    assert code == 0, out
    shown = _flat(out)
    assert "why no decision: research: 2 answered, 0 repaired, 0 abstained; 2 research packs" in (
        shown
    )
    assert (
        "pitches: 0 answered, 1 repaired, 3 abstained (malformed JSON 1, invalid answer 1, "
        "empty answer 1); no pitch made"
    ) in shown
    assert "who abstained:" in shown
    assert f"pitches: pm-mean_reversion ({PRICED}): malformed JSON: 1 validation error(s): " in (
        shown
    )
    assert f"pitches: pm-risk_parity ({PRICED}): invalid answer: " in shown
    assert f"pitches: pm-contrarian ({PRICED}): empty answer: " in shown
    assert "pm-momentum (" not in shown  # repaired: it answered
    assert "no pitch survived" not in shown  # the generic sentence is gone

    with running_api(api_settings(sample_db)) as api:
        response = api.get(f"/api/council/{run_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    stages = {s["stage"]: s for s in body["stages"]}
    assert [s["stage"] for s in body["stages"]] == STAGES
    pitches = stages["pitches"]
    assert (pitches["answered"], pitches["repaired"], pitches["abstained"]) == (0, 1, 3)
    assert pitches["causes"] == {"malformed JSON": 1, "invalid answer": 1, "empty answer": 1}
    members = {m["member"]: m for m in pitches["members"]}
    assert members["pm-momentum"]["answer"] == "repaired"
    assert members["pm-mean_reversion"]["cause"] == "malformed JSON"
    assert "Invalid JSON" in members["pm-mean_reversion"]["error"]
    assert members["pm-mean_reversion"]["call_id"] is not None
    assert [(stages[s]["state"], stages[s]["answered"]) for s in STAGES[2:]] == [
        ("skipped", 0),
        ("skipped", 0),
        ("skipped", None),  # no model is asked to approve or execute
        ("skipped", None),
    ]
    assert stages["review"]["outcome"] == "no pitch to review"
    assert body["why_no_decision"] == [
        "research: 2 answered, 0 repaired, 0 abstained; 2 research packs",
        "pitches: 0 answered, 1 repaired, 3 abstained (malformed JSON 1, invalid answer 1, "
        "empty answer 1); no pitch made",
    ]


def test_a_run_stopped_by_its_budget_names_the_stage_and_the_members_never_asked(
    aitrader: Run, priced_llm: FakeOpenAI, sample_db: str
) -> None:
    code, out = aitrader(
        "council", "run", "--as-of", AS_OF, "--approval", "auto", "--models", PRICED,
        "--budget", "0.004",
    )  # fmt: skip
    assert code == 3, out
    code, out = aitrader("council", "show", str(_last_run(sample_db)))
    assert code == 0, out
    shown = _flat(out)
    assert "why no decision: the run was canceled: stopped on its LLM budget: " in shown
    assert "research: stopped; " in shown
    assert "(budget " in shown
    assert "no call recorded: the run stopped before asking" in shown
    assert "pitches:" not in shown.split("why no decision:", 1)[1]  # never reached


# --- causes as the real gateway stores them ---------------------------------------------


class _Pack(BaseModel):
    symbol: str
    score: float


GOOD = '{"symbol": "AAPL", "score": 0.7}'


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai(default=Reply(GOOD)) as fake:
        yield fake


def _ask(sessions: sessionmaker[Session], server: FakeOpenAI, run_id: int, member: str) -> None:
    gateway = LLMGateway(
        SqlCallStore(sessions),
        retry=RetryPolicy(max_attempts=2, base_s=0.01, max_backoff_s=0.02),
        api_base=server.base_url,
        api_key="test-key",
        use_cache=False,
    )
    messages = [{"role": "user", "content": f"Rate AAPL, {member}."}]
    ctx = CallContext("research", member, run_id)
    asyncio.run(gateway.complete(messages, _Pack, model=PRICED, ctx=ctx, timeout_s=0.3))


def test_each_failure_the_gateway_records_is_given_its_cause(
    sessions: sessionmaker[Session], server: FakeOpenAI
) -> None:
    with unit_of_work(sessions) as s:
        run_id = make_run(s).id
    script: dict[str, list[Behaviour]] = {
        "rate-limited": [RateLimited(0.01), RateLimited(0.01)],
        "slow": [Slow(2.0, Reply(GOOD)), Slow(2.0, Reply(GOOD))],
        "down": [ServerError(503), ServerError(503)],
        "garbled": [Reply("{nope"), Reply("{nope")],
        "wrong-shape": [Reply('{"symbol": 1}'), Reply('{"symbol": 2}')],
        "silent": [Reply(""), Reply("")],
        "second-try": [Reply("{nope"), Reply(GOOD)],
        "fine": [Reply(GOOD)],
    }
    for member, behaviours in script.items():
        server.enqueue(*behaviours)
        _ask(sessions, server, run_id, member)
    assert server.pending == 0

    with sessions() as s:
        report = run_report(s, run_id)
    research = report.stages[0]
    got = {m.member: (m.answer, m.cause) for m in research.members}
    assert got == {
        "rate-limited": (Answer.ABSTAINED, Cause.RATE_LIMITED),
        "slow": (Answer.ABSTAINED, Cause.TIMEOUT),
        "down": (Answer.ABSTAINED, Cause.PROVIDER_ERROR),
        "garbled": (Answer.ABSTAINED, Cause.MALFORMED_JSON),
        "wrong-shape": (Answer.ABSTAINED, Cause.INVALID_ANSWER),
        "silent": (Answer.ABSTAINED, Cause.EMPTY_ANSWER),
        "second-try": (Answer.REPAIRED, None),
        "fine": (Answer.ANSWERED, None),
    }
    assert (research.answered, research.repaired, research.abstained) == (1, 1, 6)
    assert report.why_no_decision[0].startswith("research: 1 answered, 1 repaired, 6 abstained (")


# --- what a sitting does not produce on demand --------------------------------------------


_IDS = itertools.count(1)


def _call(
    member: str,
    stage: str = "research",
    status: LLMCallStatus = LLMCallStatus.OK,
    error: str | None = None,
) -> CallFact:
    return CallFact(next(_IDS), stage, member, PRICED, status, error, False)


def _stored(**overrides: Any) -> StoredRun:
    """A completed run of two analysts, two PMs and a chairman that decided nothing."""
    values: dict[str, Any] = {
        "run_id": 7,
        "status": RunStatus.COMPLETED,
        "detail": None,
        "job_stage": "done",
        "stopped_after": None,
        "roster": (
            Seat("analyst-a", "analyst", PRICED),
            Seat("pm-a", "pm", PRICED),
            Seat("pm-b", "pm", PRICED),
            Seat("chairman", "chairman", PRICED),
        ),
        "calls": (),
        "pitches": (),
        "reviewers": frozenset(),
        "reviewed": frozenset(),
        "chair_holds": 0,
        "chair_refusals": (),
        "decisions": (),
        "intents": (),
    }
    return StoredRun(**(values | overrides))


PITCHES = (PitchFact(1, "pm-a", "AAPL", None), PitchFact(2, "pm-b", "MSFT", "reward/risk 1.1"))
PITCHED = (_call("analyst-a"), _call("pm-a", "pitch"), _call("pm-b", "pitch"))
DECIDED = (*PITCHED, _call("pm-b", "review"), _call("chairman", "chairman"))


def test_a_reviewer_whose_scores_were_not_kept_abstained_with_no_cause_invented() -> None:
    run = _stored(calls=(*PITCHED, _call("pm-b", "review")), pitches=PITCHES)
    report = summarise(run)
    review = report.stages[2]
    [ballot] = review.members
    assert (ballot.member, ballot.cause) == ("pm-b", Cause.BALLOT_NOT_COUNTED)
    assert "reason is not stored" in (ballot.error or "")
    assert report.stages[1].notes == ("MSFT by pm-b dropped: reward/risk 1.1",)
    assert report.why_no_decision[-1] == (
        "review: 0 answered, 0 repaired, 1 abstained (ballot not counted 1); "
        "0 of 1 pitches reviewed"
    )
    assert report.stages[3].state is StageState.SKIPPED


def test_a_chairman_who_answered_only_holds_is_where_the_chain_ended() -> None:
    run = _stored(
        calls=DECIDED,
        pitches=PITCHES,
        reviewers=frozenset({"pm-b"}),
        reviewed=frozenset({1}),
        chair_holds=1,
        chair_refusals=("MSFT: pitch B was not shown to the council",),
    )
    report = summarise(run)
    assert report.why_no_decision[-1] == (
        "chairman: 1 answered, 0 repaired, 0 abstained; 0 decisions, 1 hold, 1 call refused"
    )
    assert report.stages[3].notes == ("refused MSFT: pitch B was not shown to the council",)


def test_a_run_stopped_after_research_as_asked_reaches_no_other_stage() -> None:
    detail = "stopped after research, as asked"
    run = _stored(calls=(_call("analyst-a"),), stopped_after="research", detail=detail)
    report = summarise(run)
    assert [s.state for s in report.stages] == [StageState.DONE] + [StageState.NOT_REACHED] * 5
    assert report.stages[1].outcome == detail
    assert report.why_no_decision == (
        f"the run completed: {detail}",
        "research: 1 answered, 0 repaired, 0 abstained; 1 research pack",
    )


def test_decisions_waiting_for_approval_and_refused_intents_are_stage_outcomes() -> None:
    decided: dict[str, Any] = {
        "calls": DECIDED,
        "pitches": PITCHES,
        "reviewers": frozenset({"pm-b"}),
        "reviewed": frozenset({1}),
    }
    decision = DecisionFact(3, "AAPL", DecisionStatus.PROPOSED, None, None)
    waiting = summarise(_stored(status=RunStatus.RUNNING, decisions=(decision,), **decided))
    assert waiting.why_no_decision == ()
    assert waiting.stages[4].state is StageState.WAITING
    assert waiting.stages[4].outcome == "1 proposed, waiting for an approver"

    approved = DecisionFact(3, "AAPL", DecisionStatus.APPROVED, "auto", None)
    refused = IntentFact(
        "paper", "AAPL", Side.BUY, Decimal("100"), IntentStatus.RISK_REJECTED,
        ("max_order_notional",), "order notional 31,010.00 > limit 10,000.00",
    )  # fmt: skip
    done = summarise(_stored(decisions=(approved,), intents=(refused,), **decided))
    assert done.stages[3].outcome == "1 decision, 0 holds"
    assert done.stages[4].outcome == "1 approved by auto"
    assert done.stages[5].outcome == "1 intent: 1 risk_rejected"
    assert done.stages[5].notes == (
        "paper buy 100 AAPL: risk_rejected [max_order_notional] "
        "order notional 31,010.00 > limit 10,000.00",
    )


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        ("not in cache: a replay asks no model", Cause.NOT_IN_CACHE),
        (
            "prompt of 9,120 tokens does not fit local: window 8,192, 2,000 kept for the "
            "answer and 10% margin leave 5,629",
            Cause.TOO_LONG,
        ),
        ("no repair round: prompt of 9,120 tokens does not fit local: ...", Cause.TOO_LONG),
    ],
)
def test_a_call_never_sent_is_classified_by_why(error: str, cause: Cause) -> None:
    assert classify(LLMCallStatus.ERROR, error) is cause
