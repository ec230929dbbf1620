"""The council's track record and its backtests over HTTP, on both databases.

Rows are written with the ORM classes the flow writes (three sittings of three members on
two models, their pitch outcomes and reviewer scores, a completed council backtest with
its sittings and each book's trades, and a running one), then read back: the rolling
window's arithmetic, the by-model sums, the list, the detail, the trades, and the 404s
and 422s. The flow that writes these rows has its own tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from db.engine import unit_of_work
from db.queries.backtests import json_metrics
from models.council import CouncilRun
from models.enums import RunStatus, Side
from models.track_record import (
    CouncilBacktest,
    CouncilBacktestSitting,
    CouncilBacktestTrade,
    PitchOutcome,
    ReviewerScore,
)
from tests.api_support import Api
from tests.council_factories import make_pitch, make_run

WEEKS = [datetime(2019, 5, 21, tzinfo=UTC) + timedelta(days=7 * k) for k in range(3)]
MINI, CLAUDE = "openai/gpt-4o-mini", "anthropic/claude-3-5-sonnet"
# (member, model, sitting, excess, outcome, approved, may_know)
OUTCOMES = [
    ("pm-momentum", MINI, 0, 0.10, "take_profit", False, False),
    ("pm-momentum", MINI, 1, -0.05, "stop_loss", False, False),
    ("pm-momentum", MINI, 2, 0.02, "horizon", True, False),
    ("pm-value", MINI, 2, 0.04, "take_profit", False, True),
    ("pm-contrarian", CLAUDE, 0, -0.02, "stop_loss", False, False),
    ("pm-contrarian", CLAUDE, 2, 0.06, "take_profit", False, False),
]
# (reviewer, model, sitting, rank_corr): a None is too few pitches to rank, never counted
SCORES = [
    ("pm-momentum", MINI, 0, 0.5),
    ("pm-momentum", MINI, 2, -0.1),
    ("pm-contrarian", CLAUDE, 1, 0.3),
    ("pm-contrarian", CLAUDE, 2, None),
]


@dataclass(frozen=True)
class Seeded:
    runs: list[int]
    done: int  # the completed backtest
    running: int  # a later one, still sitting
    job_id: int


@pytest.fixture
def seeded(api: Api) -> Seeded:
    with unit_of_work(api.sessions) as session:
        runs = [make_run(session, as_of=as_of) for as_of in WEEKS]
        for member, model, k, excess, outcome, approved, may_know in OUTCOMES:
            _outcome(session, runs[k], member, model, excess, outcome, approved, may_know)
        for reviewer, model, k, corr in SCORES:
            session.add(
                ReviewerScore(run_id=runs[k].id, reviewer=reviewer, model=model,
                              as_of=runs[k].as_of, pitches=3, rank_corr=corr)
            )  # fmt: skip
        job_id = _job(session)
        done = _backtest(session, runs, job_id)
        running = CouncilBacktest(
            start=WEEKS[0], end=WEEKS[-1], universe=["AAPL"], params={"rebalance": "monthly"},
            sittings=2, status=RunStatus.RUNNING,
            created_at=datetime(2024, 2, 1, tzinfo=UTC),
        )  # fmt: skip
        session.add(running)
        session.flush()
        return Seeded([r.id for r in runs], done, running.id, job_id)


def _members(api: Api, **params: Any) -> list[dict[str, Any]]:
    answer = api.get("/api/council/members", params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["window"] == params.get("window", 12)
    assert body["by"] == params.get("by", "member")
    members: list[dict[str, Any]] = body["members"]
    return members


def test_the_record_spans_every_scored_sitting_within_the_default_window(
    api: Api, seeded: Seeded
) -> None:
    contrarian, momentum, value = _members(api)
    assert [m["member"] for m in (contrarian, momentum, value)] == [
        "pm-contrarian", "pm-momentum", "pm-value",
    ]  # fmt: skip
    assert momentum["model"] == MINI
    assert momentum["pitches"] == 3
    assert momentum["hit_rate"] == pytest.approx(2 / 3)
    assert momentum["mean_excess"] == pytest.approx((0.10 - 0.05 + 0.02) / 3)
    assert momentum["take_profit_rate"] == pytest.approx(1 / 3)
    assert momentum["stop_loss_rate"] == pytest.approx(1 / 3)
    assert (momentum["approved"], momentum["reviews"], momentum["may_know"]) == (1, 2, 0)
    assert momentum["mean_rank_corr"] == pytest.approx((0.5 - 0.1) / 2)
    # one pitch, no review: no mean rank correlation (null, not 0), flagged as may-know
    assert value["pitches"] == 1
    assert (value["hit_rate"], value["reviews"], value["mean_rank_corr"]) == (1.0, 0, None)
    assert value["may_know"] == 1
    # the unrankable review (None) is not a review
    assert (contrarian["pitches"], contrarian["reviews"]) == (2, 1)
    assert contrarian["mean_rank_corr"] == pytest.approx(0.3)
    assert contrarian["hit_rate"] == pytest.approx(0.5)


def test_window_1_keeps_each_members_newest_sitting_only(api: Api, seeded: Seeded) -> None:
    contrarian, momentum, value = _members(api, window=1)
    assert (momentum["pitches"], momentum["reviews"]) == (1, 1)
    assert momentum["mean_excess"] == pytest.approx(0.02)
    assert momentum["mean_rank_corr"] == pytest.approx(-0.1)
    assert momentum["approved"] == 1
    assert (contrarian["pitches"], contrarian["reviews"]) == (1, 0)
    assert contrarian["mean_excess"] == pytest.approx(0.06)
    assert value["pitches"] == 1
    # window 2: the contrarian's sitting with only a review counts as one of its two
    contrarian, momentum, _ = _members(api, window=2)
    assert (contrarian["pitches"], contrarian["reviews"]) == (1, 1)
    assert (momentum["pitches"], momentum["reviews"]) == (2, 1)
    assert momentum["mean_excess"] == pytest.approx((-0.05 + 0.02) / 2)


def test_by_model_sums_the_seats_of_each_model(api: Api, seeded: Seeded) -> None:
    claude, mini = _members(api, by="model")
    assert (claude["member"], claude["model"]) == (CLAUDE, CLAUDE)
    assert (mini["member"], mini["model"]) == (MINI, MINI)
    assert mini["pitches"] == 4  # pm-momentum's three and pm-value's one
    assert mini["hit_rate"] == pytest.approx(3 / 4)
    assert mini["mean_excess"] == pytest.approx((0.10 - 0.05 + 0.02 + 0.04) / 4)
    assert mini["take_profit_rate"] == pytest.approx(2 / 4)
    assert (mini["approved"], mini["reviews"], mini["may_know"]) == (1, 2, 1)
    assert claude["pitches"] == 2
    _, newest = _members(api, by="model", window=1)
    assert (newest["pitches"], newest["reviews"]) == (2, 1)  # both MINI seats' newest week
    assert newest["mean_excess"] == pytest.approx((0.02 + 0.04) / 2)


def test_until_reads_the_record_as_it_stood_then(api: Api, seeded: Seeded) -> None:
    contrarian, momentum = _members(api, until=WEEKS[1].isoformat())
    assert (momentum["pitches"], momentum["reviews"]) == (2, 1)
    assert (contrarian["pitches"], contrarian["reviews"]) == (1, 1)
    assert _members(api, until=(WEEKS[0] - timedelta(days=1)).isoformat()) == []


def test_bad_track_record_queries_are_a_422_naming_the_parameter(api: Api) -> None:
    for params, where in (
        ({"window": 0}, "window"),
        ({"window": 521}, "window"),
        ({"window": "many"}, "window"),
        ({"by": "team"}, "by"),
        ({"until": "2019-06-01"}, "until"),  # an instant needs its offset
    ):
        answer = api.get("/api/council/members", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert where in answer.text, (params, answer.text)
    assert api.get("/api/council/members", params={"window": 520}).json()["members"] == []
    assert api.get("/api/council/members", role=None).status_code == 401


def test_backtests_are_listed_newest_first_filtered_and_paged(api: Api, seeded: Seeded) -> None:
    page = api.get("/api/council/backtests").json()
    assert [b["id"] for b in page["items"]] == [seeded.running, seeded.done]
    assert page["next_offset"] is None
    running, done = page["items"]
    assert (running["status"], running["sittings"], running["sittings_done"]) == ("running", 2, 0)
    assert running["metrics"] is None
    assert done["job_id"] == seeded.job_id
    assert (done["sittings"], done["sittings_done"], done["requests"], done["cache_hits"]) == (
        3, 3, 40, 12,
    )  # fmt: skip
    assert Decimal(done["cost_usd"]) == Decimal("0.42")
    first = api.get("/api/council/backtests", params={"limit": 1}).json()
    assert ([b["id"] for b in first["items"]], first["next_offset"]) == ([seeded.running], 1)
    rest = api.get("/api/council/backtests", params={"limit": 1, "offset": 1}).json()
    assert ([b["id"] for b in rest["items"]], rest["next_offset"]) == ([seeded.done], None)
    completed = api.get("/api/council/backtests", params={"status": "completed"}).json()
    assert [b["id"] for b in completed["items"]] == [seeded.done]
    by_job = api.get("/api/council/backtests", params={"job": seeded.job_id}).json()
    assert [b["id"] for b in by_job["items"]] == [seeded.done]
    since = api.get("/api/council/backtests", params={"since": "2024-01-15T00:00:00Z"}).json()
    assert [b["id"] for b in since["items"]] == [seeded.running]


def test_a_backtest_in_detail_has_its_metrics_report_equity_and_sittings(
    api: Api, seeded: Seeded
) -> None:
    answer = api.get(f"/api/council/backtests/{seeded.done}")
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    row = detail["backtest"]
    assert row["id"] == seeded.done
    assert row["status"] == "completed"
    assert row["params"]["rebalance"] == "weekly"
    assert row["universe"] == ["AAPL", "MSFT"]
    assert set(row["metrics"]) == {"council", "buy_and_hold", "momentum"}
    assert row["metrics"]["council"]["total_return"] == pytest.approx(0.031)
    assert row["metrics"]["council"]["trades"] == 2
    assert row["metrics"]["momentum"]["profit_factor"] == "inf"  # as json_metrics stored it
    assert row["metrics"]["buy_and_hold"]["sharpe"] == "nan"
    assert detail["report"]["cutoff"]["flagged_sittings"] == 1
    assert [p["council"] for p in detail["equity"]] == [100_000.0, 103_100.0]
    assert detail["equity"][0]["ts"] == "2019-05-20T00:00:00Z"
    sittings = detail["sitting_list"]
    assert [s["council_run_id"] for s in sittings] == seeded.runs
    assert [s["as_of"] for s in sittings] == [w.isoformat().replace("+00:00", "Z") for w in WEEKS]
    assert sittings[2]["cutoff_flags"] == [{"member": "pm-value", "model": MINI}]
    assert sittings[1]["status"] == "failed"
    assert sittings[1]["detail"] == "the chairman answered nothing usable"


def test_each_books_trades_in_decision_order(api: Api, seeded: Seeded) -> None:
    council = api.get(f"/api/council/backtests/{seeded.done}/trades").json()
    assert (council["backtest_id"], council["book"]) == (seeded.done, "council")
    assert [(t["symbol"], t["side"], t["exit_reason"]) for t in council["trades"]] == [
        ("AAPL", "buy", "take_profit"),
        ("MSFT", "sell", None),
    ]
    filled, refused = council["trades"]
    assert (Decimal(filled["entry_price"]), Decimal(filled["pnl"])) == (
        Decimal("175"),
        Decimal("150"),
    )
    assert filled["return_pct"] == pytest.approx(0.0857)
    assert refused["refused"] == "max_position: 0.4 of equity, at most 0.2"
    assert refused["return_pct"] is None  # stored NaN (or NULL): no number
    held = api.get(
        f"/api/council/backtests/{seeded.done}/trades", params={"book": "buy_and_hold"}
    ).json()
    assert [t["symbol"] for t in held["trades"]] == ["AAPL"]
    momentum = api.get(
        f"/api/council/backtests/{seeded.done}/trades", params={"book": "momentum"}
    ).json()
    assert momentum["trades"] == []


def test_an_unknown_backtest_is_a_404_in_one_line_and_bad_input_a_422(
    api: Api, seeded: Seeded
) -> None:
    for path in ("/api/council/backtests/999999", "/api/council/backtests/999999/trades"):
        missing = api.get(path)
        assert missing.status_code == 404, missing.text
        assert missing.json()["detail"] == "council backtest 999999 does not exist"
    for path, params in (
        ("/api/council/backtests/0", {}),
        ("/api/council/backtests/nope", {}),
        (f"/api/council/backtests/{seeded.done}/trades", {"book": "index"}),
        ("/api/council/backtests", {"status": "sleeping"}),
        ("/api/council/backtests", {"limit": 0}),
    ):
        answer = api.get(path, params=params)
        assert answer.status_code == 422, (path, params, answer.text)
    assert api.get("/api/council/backtests", role=None).status_code == 401


def _outcome(
    session: Session,
    run: CouncilRun,
    member: str,
    model: str,
    excess: float,
    outcome: str,
    approved: bool,
    may_know: bool,
) -> None:
    pitch = make_pitch(session, run, pm=member)
    session.add(
        PitchOutcome(
            pitch_id=pitch.id, run_id=run.id, member=member, model=model, symbol=pitch.symbol,
            side=pitch.side, as_of=run.as_of, outcome=outcome, entry_price=Decimal("173.3"),
            exit_price=Decimal("180"), exit_at=run.as_of + timedelta(days=10), days=10,
            ret=excess + 0.01, universe_ret=0.01, excess=excess, approved=approved,
            may_know=may_know,
        )
    )  # fmt: skip


def _job(session: Session) -> int:
    from db.queries.jobs import create_job

    return create_job(session, "council_backtest", {"start": "2019-05-20"}, None, None).id


def _backtest(session: Session, runs: list[CouncilRun], job_id: int) -> int:
    def metrics(total_return: float, **more: float) -> dict[str, Any]:
        values = {
            "total_return": total_return,
            "cagr": 0.2,
            "sharpe": 1.1,
            "max_drawdown": -0.04,
            "profit_factor": 2.0,
            "trades": 2,
            "open_trades": 0,
        }
        return json_metrics({**values, **more})  # fmt: skip

    row = CouncilBacktest(
        job_id=job_id, status=RunStatus.COMPLETED, start=WEEKS[0], end=WEEKS[-1],
        universe=["AAPL", "MSFT"], params={"rebalance": "weekly", "models": None},
        sittings=3, sittings_done=3, cost_usd=Decimal("0.42"), requests=40, cache_hits=12,
        metrics={
            "council": metrics(0.031),
            "buy_and_hold": metrics(0.02, sharpe=math.nan),
            "momentum": metrics(0.01, profit_factor=math.inf),
        },
        equity=[["2019-05-20T00:00:00+00:00", 100_000.0, 100_000.0, 100_000.0],
                ["2019-06-03T00:00:00+00:00", 103_100.0, 102_000.0, 101_000.0]],
        report={"cutoff": {"flagged_sittings": 1, "sittings": 3}},
        created_at=datetime(2024, 1, 1, tzinfo=UTC), finished_at=datetime(2024, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    session.add(row)
    session.flush()
    for k, run in enumerate(runs):
        failed = k == 1
        session.add(
            CouncilBacktestSitting(
                backtest_id=row.id, as_of=run.as_of, council_run_id=run.id,
                status=RunStatus.FAILED if failed else RunStatus.COMPLETED, decisions=1,
                cost_usd=Decimal("0.14"), requests=13, cache_hits=4,
                cutoff_flags=[{"member": "pm-value", "model": MINI}] if k == 2 else [],
                detail="the chairman answered nothing usable" if failed else None,
            )
        )  # fmt: skip
    trades = [
        ("council", "AAPL", Side.BUY, WEEKS[0], Decimal("175"), Decimal("150"), 0.0857,
         "take_profit", None),
        ("council", "MSFT", Side.SELL, WEEKS[1], None, None, math.nan, None,
         "max_position: 0.4 of equity, at most 0.2"),
        ("buy_and_hold", "AAPL", Side.BUY, WEEKS[0], Decimal("175"), Decimal("90"), 0.05,
         "open", None),
    ]  # fmt: skip
    for book, symbol, side, decided, entry, pnl, ret, reason, refused in trades:
        session.add(
            CouncilBacktestTrade(
                backtest_id=row.id, book=book, decided_at=decided, symbol=symbol, side=side,
                weight=Decimal("0.2"), qty=Decimal("10") if entry else Decimal(0),
                entry_ts=decided if entry else None, entry_price=entry,
                exit_ts=decided + timedelta(days=5) if entry else None,
                exit_price=Decimal("190") if entry else None, pnl=pnl, return_pct=ret,
                exit_reason=reason, refused=refused,
            )
        )  # fmt: skip
    session.flush()
    return row.id
