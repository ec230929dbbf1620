"""The execution stage: approved decisions to orders, one Prefect task per account.

Each account is its own task with retries, run side by side: a broker outage
on one account is retried there and, if it persists, fails that task alone;
the others finish. Retrying is safe because the account's execution is
idempotent (tasks/execution/account_run.py). The stage's artifact lists every
intent with its order's state and, for a refusal, the reason.

`execute_decisions` is the same stage as a flow of its own, for a decision
approved earlier (`aitrader council execute DECISION_ID`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from db.engine import make_engine, make_session_factory
from db.queries.council import decision_as_of
from models.base import utcnow
from services.brokers.factory import open_broker
from services.bus import make_bus
from services.settings import get_settings
from tasks.execution.account_run import execute_account, sync_account


@task(name="execute-account", cache_policy=NO_CACHE)
async def execute_account_task(
    account_name: str, decision_ids: list[int], as_of: datetime
) -> dict[str, Any]:
    """Execute the decisions on one configured account; retried on any failure."""
    settings = get_settings()
    account = settings.account(account_name)
    engine = make_engine(settings.database_url)
    bus = make_bus(settings.redis_url) if settings.redis_url else None
    try:
        async with open_broker(account, settings) as broker:
            result = await execute_account(
                make_session_factory(engine), account, broker, decision_ids, as_of=as_of, bus=bus
            )
    finally:
        if bus is not None:
            await bus.close()
        engine.dispose()
    if result.drift:
        get_run_logger().warning("%s: positions differ from the broker: %s", account, result.drift)
    return {"lines": result.lines, "new_fills": result.new_fills, "drift": result.drift}


@task(name="sync-account", cache_policy=NO_CACHE)
async def sync_account_task(account_name: str, until: datetime) -> dict[str, Any]:
    """Book one account's new fills and exits, and snapshot it; sends no order."""
    settings = get_settings()
    account = settings.account(account_name)
    engine = make_engine(settings.database_url)
    bus = make_bus(settings.redis_url) if settings.redis_url else None
    try:
        async with open_broker(account, settings) as broker:
            result = await sync_account(
                make_session_factory(engine), account, broker, until=until, bus=bus
            )
    finally:
        if bus is not None:
            await bus.close()
        engine.dispose()
    return {"account": account_name, "new_fills": result.new_fills, "drift": result.drift}


@flow(name="sync-accounts", retries=0)
async def sync_accounts(until: datetime | None = None) -> State[Any]:
    """Every configured account brought up to date (`until`: now); one task per account."""
    when = until or utcnow()
    settings = get_settings()
    names = [a.name for a in settings.accounts]
    task = sync_account_task.with_options(
        retries=settings.broker_task_retries, retry_delay_seconds=settings.broker_retry_delay_s
    )
    outcomes = await asyncio.gather(*(task(n, when) for n in names), return_exceptions=True)
    rows: list[dict[str, Any]] = []
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            rows.append({"account": name, "failed": str(outcome)})
        else:
            rows.append(outcome)
    await acreate_table_artifact(table=rows, key="account-sync", description="Accounts synced")
    failed = [r for r in rows if "failed" in r]
    if failed:
        return Failed(message="; ".join(f"{r['account']}: {r['failed']}" for r in failed))
    return Completed(message=f"{len(rows)} accounts synced", data=rows)


async def execution_stage(
    decision_ids: list[int], as_of: datetime, key: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Run every configured account's task at once; return the artifact rows and the failures."""
    settings = get_settings()
    names = [a.name for a in settings.accounts]
    task = execute_account_task.with_options(
        retries=settings.broker_task_retries, retry_delay_seconds=settings.broker_retry_delay_s
    )
    outcomes = await asyncio.gather(
        *(task(n, decision_ids, as_of) for n in names), return_exceptions=True
    )
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failed.append(f"{name}: {outcome}")
            rows.append({"account": name, "status": "account failed", "reason": str(outcome)})
        else:
            rows.extend(outcome["lines"])
    if rows:
        await acreate_table_artifact(table=rows, key=key, description="Orders by account")
    return rows, failed


@flow(name="execute-decisions", retries=0)
async def execute_decisions(decision_ids: list[int], as_of: datetime | None = None) -> State[Any]:
    """Execute decisions approved earlier, at the prices known at `as_of`.

    By default that is when their council sat, so a replayed week trades at its
    own prices; pass the current time to trade an old decision at today's.
    """
    if as_of is None:
        engine = make_engine(get_settings().database_url)
        try:
            with make_session_factory(engine)() as session:
                as_of = decision_as_of(session, decision_ids)
        finally:
            engine.dispose()
    rows, failed = await execution_stage(decision_ids, as_of, "execution-" + _key(decision_ids))
    if failed:
        return Failed(message="; ".join(failed), data=rows)
    return Completed(message=f"{len(rows)} intents", data=rows)


def _key(decision_ids: list[int]) -> str:
    return "-".join(str(d) for d in sorted(decision_ids))[:80]
