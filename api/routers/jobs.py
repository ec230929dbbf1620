"""Jobs: each is a Prefect flow run, started here and followed through its state hooks.

Watch one live on the WebSocket topic `job_updates`, or poll `GET /api/jobs/{id}`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from api.auth import LLMSpender
from api.deps import ReadSession, RuntimeDep
from api.job_start import start_job
from api.pagination import Page, PageDep
from db.queries.jobs import get_job, list_jobs
from models.enums import JobType, RunStatus
from models.jobs import JobOut, JobRequest

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

JobId = Annotated[int, Path(ge=1, le=2**53)]


@router.post("", status_code=202)
async def create_job(
    body: Annotated[
        JobRequest,
        Body(
            discriminator="type",
            openapi_examples={
                "council": {
                    "summary": "Sit the council for a past week; pause for approval",
                    "value": {"type": "council", "params": {"as_of": "2020-01-03"}},
                },
                "research": {
                    "summary": "Research only",
                    "value": {"type": "research", "params": {"as_of": "2020-01-03"}},
                },
                "backtest": {
                    "summary": "Backtest an SMA crossover; lists in params sweep",
                    "value": {
                        "type": "backtest",
                        "params": {
                            "strategy": "sma_cross",
                            "params": {"fast": [5, 10, 20], "slow": 50},
                            "symbols": ["AAPL", "MSFT"],
                            "start": "2016-01-01",
                            "end": "2019-12-31",
                        },
                    },
                },
                "training": {
                    "summary": "Train the forecaster on three symbols; promoted only if better",
                    "value": {
                        "type": "training",
                        "params": {"models": ["forecaster"], "symbols": ["AAPL", "MSFT", "XOM"]},
                    },
                },
                "pattern_scan": {
                    "summary": "Which patterns fired in 2019, and what followed",
                    "value": {"type": "pattern_scan", "params": {"start": "2019-01-01"}},
                },
                "suggestion": {
                    "summary": "Suggestions as of the last stored close",
                    "value": {"type": "suggestion", "params": {"symbols": ["AAPL", "MSFT"]}},
                },
                "sentiment": {
                    "summary": "Backfill symbol sentiment over January 2024, one figure a day",
                    "value": {
                        "type": "sentiment",
                        "params": {"start": "2024-01-01", "end": "2024-01-31", "step_hours": 24},
                    },
                },
                "council_backtest": {
                    "summary": "Sit the council monthly over 2019 H1; judge it against baselines",
                    "value": {
                        "type": "council_backtest",
                        "params": {
                            "start": "2019-01-01",
                            "end": "2019-06-30",
                            "universe": ["AAPL", "MSFT", "XOM"],
                            "rebalance": "monthly",
                            "budget_usd": 5,
                        },
                    },
                },
            },
        ),
    ],
    caller: LLMSpender,
    runtime: RuntimeDep,
) -> JobOut:
    """Start a job's flow run. Accepted means started (or queued for a free worker), not
    done: follow it on `job_updates` or `GET /api/jobs/{id}`. A `sentiment` job without
    `start` scores new news as of now; with `start` (and `end`) it backfills, its progress
    in `result.done`/`result.total`. `training` needs the ml extra (torch). A
    `council_backtest` reports its sittings the same way; its results are at
    `GET /api/council/backtests`."""
    return await start_job(runtime, body, caller)


@router.get("/{job_id}")
def read_job(job_id: JobId, session: ReadSession) -> JobOut:
    """One job: status (following its flow run's state), stage, result or error."""
    return JobOut.model_validate(get_job(session, job_id))


@router.get("")
def read_jobs(
    session: ReadSession,
    page: PageDep,
    type: Annotated[JobType | None, Query(description="Only jobs of this type.")] = None,
    status: Annotated[RunStatus | None, Query(description="Only jobs in this status.")] = None,
) -> Page[JobOut]:
    """Jobs, newest first; `since`/`until` apply to when they were requested."""
    rows = list_jobs(
        session,
        kind=type,
        status=status,
        since=page.since,
        until=page.until,
        limit=page.fetch,
        offset=page.offset,
    )
    return Page.of([JobOut.model_validate(r) for r in rows], page)
