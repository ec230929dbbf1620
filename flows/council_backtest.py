"""The `council-backtest` flow: sit the council at every rebalance day of a past range,
execute what it decided over the stored bars, and judge it against two baselines.

sittings (each a `weekly-council` subflow run: point in time, answers cached;
a sitting that was sat before is answered from the cache at $0, and `replay`
asks no model at all) -> the decisions executed as the paper account would
(tasks/council_backtest/book.py), beside buy-and-hold of the equal-weight
universe and a momentum rotation through the same book -> every kept pitch and
every reviewer scored against what followed -> metrics, equity, bias report
and cutoff flags stored (`council_backtests` and friends) and shown as
artifacts. Progress is by sitting: the job's stage and a progress artifact.

The run's LLM budget spans every sitting: each sits with what is left, and the
first sitting that runs out ends the backtest `canceled`, the cause in words;
what was asked stays cached, so a rerun with a larger budget pays only for the
sittings it has not sat.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled, Completed
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory, read_sessions_of, transaction
from db.queries import track_record as tr
from db.queries.bar_coverage import bar_coverage
from db.queries.bars import bars_frame
from db.queries.jobs import record_stage
from flows.council_backtest_report import publish, store_results
from flows.job_hooks import JOB_HOOKS
from flows.weekly_council import weekly_council
from models.accounts import AccountConfig
from models.enums import RunStatus, Timeframe
from models.errors import InvalidInputError, describe_failure
from services.settings import get_settings
from tasks.backtest.panel import PricePanel
from tasks.council.roster import Member
from tasks.council.week import council_day
from tasks.council_backtest.sittings import Rebalance, sitting_bars

HISTORY_DAYS = 140  # bars before `start` for sizing's volatility and momentum's lookback


@flow(name="council-backtest", retries=0, **JOB_HOOKS)
async def council_backtest(
    start: date,
    end: date,
    universe: list[str] | None = None,
    models: list[str] | None = None,
    members: list[Member] | None = None,
    rebalance: Rebalance = "weekly",
    budget_usd: float | None = None,
    account: str | None = None,
    max_positions: int = 5,
    max_weight: float = 0.2,
    min_reward_risk: float = 1.5,
    cutoff_policy: Literal["flag", "refuse"] | None = None,
    replay: bool = False,
    job_id: int | None = None,
) -> State[Any]:
    """Backtest the council from `start` to `end`, sitting `rebalance` ("weekly": the last
    trading day of each week; "monthly"). The council is `members`, else the standard one
    on `models`, else as configured (as `weekly_council` seats it). Orders are sized and
    checked for `account` (default: the first configured), with its costs. `replay`: every
    answer from the cache, no model asked (a sitting never sat before abstains).
    """
    settings = get_settings()
    if end <= start:
        raise InvalidInputError("end", f"{end} is not after start {start}")
    chosen = settings.account(account) if account else settings.accounts[0]
    engine = make_engine(settings.database_url)
    try:
        return await _backtest(
            make_session_factory(engine), start, end, universe, models, members, rebalance,
            budget_usd, chosen, max_positions, max_weight, min_reward_risk, cutoff_policy,
            replay, job_id,
        )  # fmt: skip
    finally:
        engine.dispose()


async def _backtest(
    sessions: sessionmaker[Session],
    start: date,
    end: date,
    universe: list[str] | None,
    models: list[str] | None,
    members: list[Member] | None,
    rebalance: Rebalance,
    budget_usd: float | None,
    chosen: AccountConfig,
    max_positions: int,
    max_weight: float,
    min_reward_risk: float,
    cutoff_policy: Literal["flag", "refuse"] | None,
    replay: bool,
    job_id: int | None,
) -> State[Any]:
    logger = get_run_logger()
    with read_sessions_of(sessions)() as session:
        council_day(session, start, universe, field="start")
        council_day(session, end, universe, field="end")
        symbols = universe or sorted({c.symbol for c in bar_coverage(session, None, Timeframe.D1)})
        frame = bars_frame(session, symbols, start - timedelta(days=HISTORY_DAYS), end)
    panel = PricePanel.from_frame(frame, sorted(set(frame["symbol"])))
    bars = sitting_bars(panel.dates, start, end, rebalance)
    if not bars:
        raise InvalidInputError("start", f"no {rebalance} sitting between {start} and {end}")
    days = [panel.dates[b].date() for b in bars]
    params = {
        "rebalance": rebalance,
        "models": models,
        "members": [m.model_dump(mode="json") for m in members] if members else None,
        "account": chosen.name,
        "max_positions": max_positions,
        "max_weight": max_weight,
        "min_reward_risk": min_reward_risk,
        "replay": replay,
    }
    budget = Decimal(str(budget_usd)) if budget_usd is not None and not replay else None
    backtest_id = await asyncio.to_thread(
        transaction,
        sessions,
        lambda s: (
            tr.create_council_backtest(
                s,
                start=_instant(start),
                end=_instant(end),
                universe=symbols,
                params=params,
                sittings=len(bars),
                budget_usd=budget,
                job_id=job_id,
                flow_run_id=str(current_flow_run.id),
            ).id
        ),
    )
    logger.info("council backtest %s: %d %s sittings", backtest_id, len(bars), rebalance)
    try:
        sat, stopped = await _sit_all(
            sessions,
            backtest_id,
            days,
            job_id,
            budget,
            dict(
                universe=universe,
                models=models,
                members=members,
                max_positions=max_positions,
                max_weight=max_weight,
                min_reward_risk=min_reward_risk,
                cutoff_policy=cutoff_policy,
                replay=replay,
            ),
        )
        if stopped is not None:
            await asyncio.to_thread(_finish, sessions, backtest_id, RunStatus.CANCELED, stopped)
            return Cancelled(message=stopped)
        if not sat:
            raise InvalidInputError("start", "no sitting completed: nothing to judge")
        judged = await asyncio.to_thread(
            store_results, sessions, backtest_id, panel, dict(zip(days, bars, strict=True)), sat,
            chosen, max_positions,
        )  # fmt: skip
    except Exception as exc:
        cause = describe_failure(exc)
        await asyncio.to_thread(_finish, sessions, backtest_id, RunStatus.FAILED, cause)
        raise
    await publish(backtest_id, judged)
    return Completed(message=judged.summary["headline"], data=judged.summary)


async def _sit_all(
    sessions: sessionmaker[Session],
    backtest_id: int,
    days: list[date],
    job_id: int | None,
    budget: Decimal | None,
    options: dict[str, Any],
) -> tuple[dict[date, int], str | None]:
    """Sit every day in turn; ({day: council run id} of the completed sittings, why the
    backtest stopped or None)."""
    progress = await acreate_progress_artifact(
        progress=0.0,
        key=f"council-backtest-{backtest_id}-progress",
        description="Sittings done",
    )
    sat: dict[date, int] = {}
    spent = Decimal(0)
    logger = get_run_logger()
    for k, day in enumerate(days):
        left = None if budget is None else max(budget - spent, Decimal(0))
        state = await weekly_council(
            as_of=day,
            approval="auto",
            budget_usd=None if left is None else float(left),
            sitting_of=backtest_id,
            return_state=True,
            **options,
        )
        summary = await state.aresult(raise_on_failure=False) if state.is_completed() else None
        run_id = summary.get("council_run_id") if isinstance(summary, dict) else None
        if run_id is None:
            run_id = await asyncio.to_thread(_run_of_sitting, sessions, backtest_id, day)
        status = (
            RunStatus.COMPLETED
            if state.is_completed()
            else RunStatus.CANCELED
            if state.is_cancelled()
            else RunStatus.FAILED
        )
        detail = state.message if status is not RunStatus.COMPLETED else None
        decisions = len(summary.get("decisions", [])) if isinstance(summary, dict) else 0
        flags = await asyncio.to_thread(_flags_of, sessions, run_id)
        sitting = partial(
            _record_sitting,
            backtest_id=backtest_id,
            as_of=_instant(day),
            run_id=run_id,
            status=status,
            decisions=decisions,
            flags=flags,
            detail=detail,
        )
        row_cost = await asyncio.to_thread(transaction, sessions, sitting)
        spent += row_cost
        if status is RunStatus.COMPLETED and run_id is not None:
            sat[day] = run_id
        elif status is RunStatus.CANCELED:
            done = f"{k} of {len(days)}"
            return sat, (
                f"stopped on its LLM budget at the sitting of {day} after {done} sittings "
                f"(${spent.quantize(Decimal('0.01'))} spent): {detail}; what was asked is "
                "cached, so a rerun with a larger budget pays only for the rest"
            )
        else:
            logger.warning("sitting %s failed: %s", day, detail)
        await aupdate_progress_artifact(artifact_id=progress, progress=100 * (k + 1) / len(days))
        if job_id is not None:
            stage = partial(
                record_stage,
                job_id=job_id,
                stage="sittings",
                done=k + 1,
                total=len(days),
                as_of=day.isoformat(),
                council_backtest_id=backtest_id,
            )
            await asyncio.to_thread(transaction, sessions, stage)
    return sat, None


def _record_sitting(session: Session, **facts: Any) -> Decimal:
    """The sitting's row; what it spent."""
    return tr.record_sitting(session, **facts).cost_usd


def _run_of_sitting(sessions: sessionmaker[Session], backtest_id: int, day: date) -> int | None:
    """The council run a sitting opened, found by its parameters (a failed sitting returns
    no summary)."""
    from sqlalchemy import select

    from models.council import CouncilRun

    with read_sessions_of(sessions)() as session:
        runs = session.scalars(
            select(CouncilRun).where(CouncilRun.as_of == _instant(day)).order_by(CouncilRun.id)
        ).all()
        mine = [r for r in runs if (r.params or {}).get("sitting_of") == backtest_id]
        return mine[-1].id if mine else None


def _flags_of(sessions: sessionmaker[Session], run_id: int | None) -> list[dict[str, Any]]:
    if run_id is None:
        return []
    from models.council import CouncilRun

    with read_sessions_of(sessions)() as session:
        run = session.get(CouncilRun, run_id)
        return list((run.params or {}).get("may_know", [])) if run else []


def _finish(
    sessions: sessionmaker[Session], backtest_id: int, status: RunStatus, error: str
) -> None:
    transaction(sessions, lambda s: tr.finish_council_backtest(s, backtest_id, status, error=error))


def _instant(day: date) -> datetime:
    """A day's decision instant: its end (the close is known), as the council's as_of."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
