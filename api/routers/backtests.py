"""Stored backtest runs, read-only: the list, and one run with everything it stored.

A run is started as a `backtest` job (`POST /api/jobs`); the flow stores it
(flows/backtest.py), and these routes read what it stored. A run still going
is listed `running`, with no metrics yet.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import ReadSession
from api.errors import problem_responses
from api.pagination import Page, PageDep
from api.schemas.backtests import DETAIL_ROWS, BacktestDetailOut, BacktestKind, BacktestOut
from db.queries.backtests import (
    backtest_line,
    backtest_lines,
    backtest_trades,
    count_param_results,
    count_trades,
    param_results,
)
from models.enums import RunStatus

router = APIRouter(prefix="/api/backtests", tags=["backtests"])

BacktestId = Annotated[int, Path(ge=1, le=2**53)]


@router.get("", responses=problem_responses(401, 403, 422))
def read_backtests(
    session: ReadSession,
    page: PageDep,
    job: Annotated[int | None, Query(ge=1, le=2**53, description="The job that ran it.")] = None,
    strategy: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="A strategy by name (sma_cross...)."),
    ] = None,
    kind: Annotated[
        BacktestKind | None, Query(description="single, sweep or walk_forward.")
    ] = None,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
) -> Page[BacktestOut]:
    """Runs newest first by creation (`since`/`until` on it), each with its chosen set's
    metrics beside buy-and-hold's once completed."""
    lines = backtest_lines(
        session,
        job_id=job,
        strategy=strategy,
        kind=kind,
        status=status,
        since=page.since,
        until=page.until,
        limit=page.fetch,
        offset=page.offset,
    )
    return Page.of([BacktestOut.of(line) for line in lines], page)


@router.get("/{backtest_id}", responses=problem_responses(401, 403, 404, 422))
def read_backtest(backtest_id: BacktestId, session: ReadSession) -> BacktestDetailOut:
    """One run: its parameters and config, its metrics beside buy-and-hold's, every
    parameter set's results (a sweep's grid; a walk-forward's windows), both equity
    curves, and the chosen set's trades. 404 for an unknown id."""
    line = backtest_line(session, backtest_id)
    return BacktestDetailOut.of_run(
        line,
        param_results(session, backtest_id, limit=DETAIL_ROWS),
        count_param_results(session, backtest_id),
        backtest_trades(session, backtest_id, limit=DETAIL_ROWS),
        count_trades(session, backtest_id),
    )
