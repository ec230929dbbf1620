"""The council-backtest flow under a real (temporary) Prefect server, on SQLite and Postgres.

The offline analyst sits 2018-2019 (monthly, a small universe) twice: the
second pass answers every prompt from the cache, spends nothing and sends no
request, and its results are the first's. A priced model (the fake OpenAI
server through litellm) shows the training-cutoff flag, and a copy of the
data with its future rewritten shows that a sitting reads nothing after its
as_of.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import Engine, func, select, update

from db.engine import make_session_factory, unit_of_work
from flows.council_backtest import council_backtest
from models.council import CouncilDecision, CouncilRun
from models.enums import RunStatus
from models.market import Bar
from models.ops import LLMCall
from models.track_record import (
    CouncilBacktest,
    CouncilBacktestSitting,
    CouncilBacktestTrade,
    PitchOutcome,
    ReviewerScore,
)
from services.llm.cutoffs import MAY_KNOW
from tests.fake_openai import FakeOpenAI

UNIVERSE = ["AAPL", "JPM", "XOM", "PFE"]
PRICED = "openai/gpt-4o-mini"  # trained to 2023-10 (services/llm/cutoffs.py): 2018 is history


def _run(**kwargs: Any) -> Any:
    options: dict[str, Any] = {"universe": UNIVERSE, "rebalance": "monthly"} | kwargs

    async def call() -> Any:
        return await council_backtest(**options, return_state=True)

    return asyncio.run(call())


def _trades(engine: Engine, backtest_id: int) -> list[tuple[Any, ...]]:
    with make_session_factory(engine)() as session:
        rows = session.scalars(
            select(CouncilBacktestTrade)
            .where(CouncilBacktestTrade.backtest_id == backtest_id)
            .order_by(CouncilBacktestTrade.book, CouncilBacktestTrade.decided_at,
                      CouncilBacktestTrade.symbol, CouncilBacktestTrade.id)
        ).all()  # fmt: skip
        return [
            (t.book, t.decided_at, t.symbol, str(t.side), t.weight, t.qty, t.entry_ts,
             t.entry_price, t.exit_ts, t.exit_price, t.exit_reason, t.refused)
            for t in rows
        ]  # fmt: skip


def test_the_offline_council_over_2018_and_2019_twice_the_second_from_cache_at_zero(
    flow_db: Engine,
) -> None:
    first = _run(start=date(2018, 1, 1), end=date(2019, 12, 31))
    assert first.is_completed(), first.message
    one = first.result()
    assert one["sittings"] == 24
    assert set(one["metrics"]) == {"council", "buy_and_hold", "momentum"}
    assert one["requests"] > 0  # the offline analyst was asked
    assert one["cache_hits"] == 0
    assert one["trades"]["council"] > 0
    assert one["trades"]["buy_and_hold"] == len(UNIVERSE)

    second = _run(start=date(2018, 1, 1), end=date(2019, 12, 31))
    assert second.is_completed(), second.message
    two = second.result()
    assert two["requests"] == 0  # not one request: every answer came from the cache
    assert two["cache_hits"] > 0
    assert Decimal(two["cost_usd"]) == 0
    assert two["metrics"] == one["metrics"]
    assert two["refused"] == one["refused"]
    a, b = (
        _trades(flow_db, one["council_backtest_id"]),
        _trades(flow_db, two["council_backtest_id"]),
    )
    assert a == b
    assert len(a) > 30

    with make_session_factory(flow_db)() as session:
        row = session.get(CouncilBacktest, two["council_backtest_id"])
        assert row is not None
        assert row.status is RunStatus.COMPLETED
        assert (row.sittings, row.sittings_done) == (24, 24)
        assert row.equity is not None
        assert len(row.equity[0]) == 4  # ts, council, buy and hold, momentum
        report: dict[str, Any] = row.report or {}
        bias = report["bias"]
        assert bias["position_effect"] is not None
        assert bias["mean_agreement"] is not None
        assert bias["sectors"]["pitches"] > 0
        sittings = session.scalars(
            select(CouncilBacktestSitting).where(CouncilBacktestSitting.backtest_id == row.id)
        ).all()
        assert len(sittings) == 24
        assert all(s.status is RunStatus.COMPLETED and s.requests == 0 for s in sittings)
        runs = session.scalars(
            select(CouncilRun).where(CouncilRun.id.in_([s.council_run_id for s in sittings]))
        ).all()
        assert all(r.job_id is None for r in runs)
        assert all((r.params or {}).get("sitting_of") == row.id for r in runs)
        outcomes = session.scalar(select(func.count()).select_from(PitchOutcome))
        assert outcomes is not None
        assert outcomes > 24
        assert session.scalar(select(func.count()).select_from(ReviewerScore))


def test_a_sitting_reads_nothing_after_its_as_of(flow_db: Engine) -> None:
    """Rewrite every bar after February 2018 and sit again: January's and February's prompts
    are the very same (answered from the cache), March's differ."""
    window = {"start": date(2018, 1, 1), "end": date(2018, 3, 31)}
    before = _run(**window)
    assert before.is_completed(), before.message
    with unit_of_work(make_session_factory(flow_db)) as session:
        later = Bar.ts >= datetime(2018, 3, 1, tzinfo=UTC)
        session.execute(
            update(Bar)
            .where(later)
            .values(open=Bar.open * 3, high=Bar.high * 3, low=Bar.low * 3, close=Bar.close * 3)
        )
    after = _run(**window)
    assert after.is_completed(), after.message
    ids = before.result()["council_backtest_id"], after.result()["council_backtest_id"]
    with make_session_factory(flow_db)() as session:
        hashes: dict[int, dict[str, set[str]]] = {}
        for backtest_id in ids:
            sittings = session.scalars(
                select(CouncilBacktestSitting).where(
                    CouncilBacktestSitting.backtest_id == backtest_id
                )
            ).all()
            hashes[backtest_id] = {
                s.as_of.date().isoformat(): set(
                    session.scalars(
                        select(LLMCall.prompt_hash).where(LLMCall.run_id == s.council_run_id)
                    )
                )
                for s in sittings
            }
    old, new = hashes[ids[0]], hashes[ids[1]]
    assert sorted(old) == sorted(new) == ["2018-02-01", "2018-03-01", "2018-03-30"]
    assert new["2018-02-01"] == old["2018-02-01"]  # January, sat on the 31st
    assert new["2018-03-01"] == old["2018-03-01"]  # February, sat on the 28th
    assert new["2018-03-30"] != old["2018-03-30"]  # March saw the rewritten bars


def _artifact(key: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with get_client() as client:
            response = await client._client.post(
                "/artifacts/filter",
                json={
                    "limit": 1,
                    "sort": "CREATED_DESC",  # ids restart with every test database
                    "artifacts": {"key": {"any_": [key]}},
                },
            )
        found: list[dict[str, Any]] = response.json()
        assert found, key
        return found[0]

    return asyncio.run(read())


def test_a_model_trained_after_the_sittings_is_flagged_everywhere_and_refusable(
    flow_db: Engine, priced_llm: FakeOpenAI
) -> None:
    window = {"start": date(2018, 1, 1), "end": date(2018, 2, 28), "universe": UNIVERSE[:2]}
    state = _run(models=[PRICED], **window)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["cutoff"]["flagged_sittings"] == summary["sittings"] == 2
    assert summary["cutoff"]["pitches"]["before_cutoff"]["pitches"] > 0
    assert summary["cutoff"]["pitches"]["after_cutoff"]["pitches"] == 0
    assert Decimal(summary["cost_usd"]) > 0
    backtest_id = summary["council_backtest_id"]
    assert MAY_KNOW in _artifact(f"council-backtest-{backtest_id}-metrics")["description"]
    assert MAY_KNOW in _artifact(f"council-backtest-{backtest_id}-report")["data"]
    with make_session_factory(flow_db)() as session:
        sittings = session.scalars(select(CouncilBacktestSitting)).all()
        for sitting in sittings:
            assert sitting.cutoff_flags
            assert all(f["warning"] == MAY_KNOW for f in sitting.cutoff_flags)
            run = session.get(CouncilRun, sitting.council_run_id)
            assert run is not None
            assert run.detail is not None
            assert MAY_KNOW in run.detail
            for stage in ("research", "pitches"):
                artifact = _artifact(f"council-{run.id}-{stage}")
                assert MAY_KNOW in (artifact["description"] or "") + str(artifact["data"])
        assert all(o.may_know for o in session.scalars(select(PitchOutcome)))

    sent = len(priced_llm.requests)
    again = _run(models=[PRICED], **window)
    assert again.is_completed(), again.message
    assert len(priced_llm.requests) == sent  # the second pass asked nothing
    assert Decimal(again.result()["cost_usd"]) == 0

    refused = _run(models=[PRICED], cutoff_policy="refuse", **window)
    assert refused.is_failed()
    assert "no sitting completed" in (refused.message or "")
    with make_session_factory(flow_db)() as session:
        last = session.scalars(select(CouncilBacktest).order_by(CouncilBacktest.id.desc())).first()
        assert last is not None
        assert last.status is RunStatus.FAILED
        refusals = session.scalars(
            select(CouncilBacktestSitting.detail).where(
                CouncilBacktestSitting.backtest_id == last.id
            )
        ).all()
        assert refusals
        assert all("refused" in (d or "") and MAY_KNOW in (d or "") for d in refusals)
    assert len(priced_llm.requests) == sent  # a refused sitting sends nothing


@pytest.mark.parametrize("bad", [{"start": date(2018, 3, 1), "end": date(2018, 1, 1)}])
def test_a_range_that_cannot_sit_is_refused_in_one_line(
    flow_db: Engine, bad: dict[str, Any]
) -> None:
    state = _run(**bad)
    assert state.is_failed()
    assert "is not after start" in (state.message or "")


def test_an_anonymised_council_sits_beside_the_plain_one_and_the_report_compares_them(
    flow_db: Engine,
) -> None:
    state = _run(start=date(2018, 1, 1), end=date(2018, 4, 30), anonymise=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["sittings"] == 4
    assert set(summary["metrics"]) == {"council", "council_anon", "buy_and_hold", "momentum"}
    assert set(summary["modes"]) == {"plain", "anonymised"}
    assert summary["modes"]["anonymised"]["pitches"] > 0
    backtest_id = summary["council_backtest_id"]
    with make_session_factory(flow_db)() as session:
        sittings = session.scalars(
            select(CouncilBacktestSitting).where(CouncilBacktestSitting.backtest_id == backtest_id)
        ).all()
        assert sorted(s.anonymised for s in sittings) == [False] * 4 + [True] * 4
        runs = {s.council_run_id: s.anonymised for s in sittings}
        for run_id, anonymised in runs.items():
            run = session.get(CouncilRun, run_id)
            assert run is not None
            assert bool((run.params or {}).get("anonymised")) is anonymised
        books = session.scalars(
            select(CouncilBacktestTrade.book).where(CouncilBacktestTrade.backtest_id == backtest_id)
        ).all()
        assert {"council", "council_anon"} <= set(books)
        row = session.get(CouncilBacktest, backtest_id)
        assert row is not None
        assert row.equity is not None
        assert len(row.equity[0]) == 5  # ts, council, buy and hold, momentum, anonymised
    assert "Plain vs anonymised" in _artifact(f"council-backtest-{backtest_id}-report")["data"]


def test_sittings_score_what_came_before_and_weighting_uses_only_what_was_known(
    flow_db: Engine,
) -> None:
    window = {"start": date(2018, 1, 1), "end": date(2018, 6, 30), "weighting": True}
    first = _run(**window)
    assert first.is_completed(), first.message
    one = first.result()
    weighting = one["weighting"]
    assert weighting["sittings"] == one["sittings"] == 6
    assert weighting["with_record"] >= 3  # by spring the reviewers have a record
    assert weighting["ranked_by_weights"] == weighting["with_record"]
    with make_session_factory(flow_db)() as session:
        sittings = session.scalars(
            select(CouncilBacktestSitting)
            .where(CouncilBacktestSitting.backtest_id == one["council_backtest_id"])
            .order_by(CouncilBacktestSitting.as_of)
        ).all()
        # each sitting scored what had resolved before it: no outcome is of a later day
        for sitting in sittings:
            run = session.get(CouncilRun, sitting.council_run_id)
            assert run is not None
            assert run.params is not None
            assert run.params["weighting"] is True
        decisions = session.scalars(
            select(CouncilDecision).where(
                CouncilDecision.run_id.in_([s.council_run_id for s in sittings[-3:]])
            )
        ).all()
        assert decisions
        assert all(d.votes and d.votes["weighted_borda"] is not None for d in decisions)
        assert all("plain_borda" in (d.votes or {}) for d in decisions)
    again = _run(**window)  # the weights, like everything else, come out the same
    assert again.is_completed(), again.message
    two = again.result()
    assert two["requests"] == 0
    assert two["metrics"] == one["metrics"]
    assert two["weighting"] == weighting
