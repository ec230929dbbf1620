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
from dataclasses import dataclass
from datetime import date, timedelta
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
from models.days import close_instant
from models.enums import RunStatus, Timeframe
from models.errors import InvalidInputError, describe_failure
from services.settings import get_settings
from tasks.backtest.panel import PricePanel
from tasks.council.roster import Member
from tasks.council.week import council_day
from tasks.council_backtest.sittings import Rebalance, sitting_bars

HISTORY_DAYS = 140  # bars before `start` for sizing's volatility and momentum's lookback


@dataclass(frozen=True)
class _Plan:
    """A council backtest as asked: its range, who is judged with what, and what every
    sitting is given (`sitting`, `weekly_council`'s own parameters)."""

    start: date
    end: date
    universe: list[str] | None
    rebalance: Rebalance
    budget: Decimal | None
    account: AccountConfig
    max_positions: int
    job_id: int | None
    modes: tuple[bool, ...]  # anonymised or not, each day sat once per mode
    sitting: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """The parameters the backtest's row keeps."""
        members = self.sitting["members"]
        return {
            **{k: v for k, v in self.sitting.items() if k not in ("universe", "members")},
            "members": [m.model_dump(mode="json") for m in members] if members else None,
            "rebalance": self.rebalance,
            "account": self.account.name,
            "anonymise": True in self.modes,
        }


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
    anonymise: bool = False,
    weighting: bool | None = None,
    job_id: int | None = None,
) -> State[Any]:
    """Backtest the council from `start` to `end`, sitting `rebalance` ("weekly": the last
    trading day of each week; "monthly"). The council is `members`, else the standard one
    on `models`, else as configured (as `weekly_council` seats it). Orders are sized and
    checked for `account` (default: the first configured), with its costs. `replay`: every
    answer from the cache, no model asked (a sitting never sat before abstains).
    `anonymise`: every day is sat twice, as it is and anonymised (aliases for symbols,
    rescaled prices: tasks/council/anonymise.py), and the two councils are compared: a
    model that remembers the real series does better only where it can see it.
    `weighting` (default COUNCIL_VOTE_WEIGHTING): each sitting ranks pitches by reviews
    weighted by the reviewers' skill so far; the report says where that changed the top.
    """
    settings = get_settings()
    if end <= start:
        raise InvalidInputError("end", f"{end} is not after start {start}")
    plan = _Plan(
        start=start,
        end=end,
        universe=universe,
        rebalance=rebalance,
        budget=Decimal(str(budget_usd)) if budget_usd is not None and not replay else None,
        account=settings.account(account) if account else settings.accounts[0],
        max_positions=max_positions,
        job_id=job_id,
        modes=(False, True) if anonymise else (False,),
        sitting={
            "universe": universe,
            "models": models,
            "members": members,
            "max_positions": max_positions,
            "max_weight": max_weight,
            "min_reward_risk": min_reward_risk,
            "cutoff_policy": cutoff_policy,
            "replay": replay,
            "weighting": weighting,
        },
    )
    engine = make_engine(settings.database_url)
    try:
        return await _backtest(make_session_factory(engine), plan)
    finally:
        engine.dispose()


async def _backtest(sessions: sessionmaker[Session], plan: _Plan) -> State[Any]:
    with read_sessions_of(sessions)() as session:
        council_day(session, plan.start, plan.universe, field="start")
        council_day(session, plan.end, plan.universe, field="end")
        coverage = bar_coverage(session, None, Timeframe.D1)
        symbols = plan.universe or sorted({c.symbol for c in coverage})
        frame = bars_frame(session, symbols, plan.start - timedelta(days=HISTORY_DAYS), plan.end)
    panel = PricePanel.from_frame(frame, sorted(set(frame["symbol"])))
    bars = sitting_bars(panel.dates, plan.start, plan.end, plan.rebalance)
    if not bars:
        raise InvalidInputError(
            "start", f"no {plan.rebalance} sitting between {plan.start} and {plan.end}"
        )
    days = [panel.dates[b].date() for b in bars]
    sittings = [(day, mode) for day in days for mode in plan.modes]
    opened = partial(
        tr.create_council_backtest,
        start=close_instant(plan.start),
        end=close_instant(plan.end),
        universe=symbols,
        params=plan.record(),
        sittings=len(sittings),
        budget_usd=plan.budget,
        job_id=plan.job_id,
        flow_run_id=str(current_flow_run.id),
    )
    backtest_id = await asyncio.to_thread(transaction, sessions, lambda s: opened(s).id)
    get_run_logger().info(
        "council backtest %s: %d %s sittings", backtest_id, len(bars), plan.rebalance
    )
    try:
        sat, stopped = await _sit_all(sessions, backtest_id, sittings, plan)
        if stopped is not None:
            await asyncio.to_thread(_finish, sessions, backtest_id, RunStatus.CANCELED, stopped)
            return Cancelled(message=stopped)
        if not sat.get(False):
            raise InvalidInputError("start", "no sitting completed: nothing to judge")
        bar_of_day = dict(zip(days, bars, strict=True))
        judged = await asyncio.to_thread(
            store_results, sessions, backtest_id, panel, bar_of_day, sat, plan.account,
            plan.max_positions,
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
    sittings: list[tuple[date, bool]],
    plan: _Plan,
) -> tuple[dict[bool, dict[date, int]], str | None]:
    """Sit every (day, anonymised) in turn; ({anonymised: {day: council run id}} of the
    completed sittings, why the backtest stopped or None)."""
    progress = await acreate_progress_artifact(
        progress=0.0,
        key=f"council-backtest-{backtest_id}-progress",
        description="Sittings done",
    )
    sat: dict[bool, dict[date, int]] = {mode: {} for mode in plan.modes}
    spent = Decimal(0)
    logger = get_run_logger()
    total = len(sittings)
    for k, (day, anonymised) in enumerate(sittings):
        left = None if plan.budget is None else max(plan.budget - spent, Decimal(0))
        state = await weekly_council(
            as_of=day,
            approval="auto",
            budget_usd=None if left is None else float(left),
            sitting_of=backtest_id,
            anonymise=anonymised,
            return_state=True,
            **plan.sitting,
        )
        summary = await state.aresult(raise_on_failure=False) if state.is_completed() else None
        decided: list[Any] = summary.get("decisions", []) if isinstance(summary, dict) else []
        status = (
            RunStatus.COMPLETED
            if state.is_completed()
            else RunStatus.CANCELED
            if state.is_cancelled()
            else RunStatus.FAILED
        )
        detail = state.message if status is not RunStatus.COMPLETED else None
        record = partial(
            _record_sitting,
            backtest_id=backtest_id,
            as_of=close_instant(day),
            anonymised=anonymised,
            status=status,
            decisions=len(decided),
            detail=detail,
        )
        run_id, cost = await asyncio.to_thread(transaction, sessions, record)
        spent += cost
        if status is RunStatus.COMPLETED and run_id is not None:
            sat[anonymised][day] = run_id
        elif status is RunStatus.CANCELED:
            return sat, (
                f"stopped on its LLM budget at the sitting of {day} after {k} of {total} "
                f"sittings (${spent.quantize(Decimal('0.01'))} spent): {detail}; what was "
                "asked is cached, so a rerun with a larger budget pays only for the rest"
            )
        else:
            logger.warning("sitting %s failed: %s", day, detail)
        await aupdate_progress_artifact(artifact_id=progress, progress=100 * (k + 1) / total)
        if plan.job_id is not None:
            stage = partial(
                record_stage,
                job_id=plan.job_id,
                stage="sittings",
                done=k + 1,
                total=total,
                as_of=day.isoformat(),
                council_backtest_id=backtest_id,
            )
            await asyncio.to_thread(transaction, sessions, stage)
    return sat, None


def _record_sitting(session: Session, **facts: Any) -> tuple[int | None, Decimal]:
    """The sitting's row; its council run and what it spent."""
    row = tr.record_sitting(session, **facts)
    return row.council_run_id, row.cost_usd


def _finish(
    sessions: sessionmaker[Session], backtest_id: int, status: RunStatus, error: str
) -> None:
    transaction(sessions, lambda s: tr.finish_council_backtest(s, backtest_id, status, error=error))
