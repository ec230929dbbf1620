"""`aitrader accounts reset` and the demo's fresh start: a spent paper account starts again
with its starting cash, and the old one stays whole under a new name (both databases)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from models.accounts import AccountConfig
from models.council import CouncilDecision, CouncilRun
from models.enums import RunStatus
from models.errors import ConflictError
from models.ops import AuditEvent
from models.trading import Account, Order
from services.brokers.factory import open_broker, paper_state_path
from services.settings import Settings
from tasks.execution.account_run import execute_account
from tasks.execution.paper_reset import reset_paper_account
from tests.conftest import Run
from tests.test_execution_risk import AS_OF, Case, setup_decision

NOW = datetime(2026, 12, 5, 13, 0, 0, tzinfo=UTC)
RETIRED = "acct@20261205T130000"

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(migrated_db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=migrated_db_url, paper_state_dir=tmp_path / "paper")


def _another_decision(sessions: sessionmaker[Session]) -> int:
    """The first run's approved decision again, in a run of its own (the bars are stored)."""
    with unit_of_work(sessions) as session:
        first = session.scalars(select(CouncilDecision).order_by(CouncilDecision.id)).first()
        assert first is not None
        run = CouncilRun(as_of=AS_OF, status=RunStatus.COMPLETED)
        session.add(run)
        session.flush()
        copy = {c.key: getattr(first, c.key) for c in CouncilDecision.__table__.columns}
        decision = CouncilDecision(**{**copy, "id": None, "run_id": run.id})
        session.add(decision)
        session.flush()
        return decision.id


async def _trade(
    sessions: sessionmaker[Session], settings: Settings, account: AccountConfig
) -> int:
    """Execute an approved AAPL decision on `account`; the newest entry's quantity."""
    with sessions() as session:
        stored = session.scalars(select(CouncilDecision)).first() is not None
    if stored:
        decision_id = _another_decision(sessions)
    else:
        decision_id, _ = setup_decision(sessions, Case("none", account=account))
    async with open_broker(account, settings) as broker:
        await execute_account(sessions, account, broker, [decision_id], as_of=AS_OF)
        (entry, *_) = await broker.list_orders()
        return int(entry.qty)


async def test_a_reset_retires_the_account_whole_and_the_next_trade_starts_fresh(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = Case("none").account
    await _trade(sessions, settings, account)
    state = paper_state_path(account, settings)
    assert state.exists()

    done = await reset_paper_account(sessions, settings, account, "ops", NOW)

    assert done.retired_as == RETIRED
    assert (done.positions, done.orders) == (1, 3)  # the entry and its two bracket legs
    assert done.describe().startswith(
        "paper account 'acct' starts afresh with 100,000.00 cash; the previous one (equity "
    )
    assert not state.exists()
    kept = json.loads(state.with_name(f"{RETIRED}.json").read_text())
    assert kept["positions"]  # the old broker state, whole
    with sessions() as session:
        old = session.scalars(select(Account).where(Account.name == RETIRED)).one()
        assert len(session.scalars(select(Order).where(Order.account_id == old.id)).all()) == 3
        assert session.scalars(select(Account).where(Account.name == "acct")).first() is None
        event = session.scalars(select(AuditEvent).where(AuditEvent.event == "account.reset")).one()
        assert event.actor == "ops"
        assert event.payload["before"]["positions"] == {"AAPL": "100"}
        assert event.payload["after"] == {"name": RETIRED, "state_file": f"{RETIRED}.json"}

    assert await _trade(sessions, settings, account) == 100  # the same size again: fresh cash
    async with open_broker(account, settings) as broker:
        assert (await broker.account()).cash < Decimal(100_000)
        assert len(await broker.list_orders()) == 1  # only the new entry: a new broker
    with sessions() as session:
        new = session.scalars(select(Account).where(Account.name == "acct")).one()
        assert new.id != old.id


async def test_an_account_never_used_is_left_as_it_is(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = AccountConfig(name="unused")
    done = await reset_paper_account(sessions, settings, account, "ops", NOW)
    assert done.retired_as is None
    assert done.describe() == (
        "paper account 'unused' starts afresh with 100,000.00 cash (it had not been used)"
    )
    with sessions() as session:
        assert session.scalars(select(AuditEvent)).all() == []


async def test_a_live_broker_account_is_never_reset(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = AccountConfig(name="alp", broker="alpaca")
    with pytest.raises(ConflictError, match="'alp' is not a paper account: not reset"):
        await reset_paper_account(sessions, settings, account, "ops", NOW)


async def test_a_reset_that_cannot_be_recorded_leaves_the_state_file_where_it_was(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    """The retired name is taken (a reset in the same second): nothing moves."""
    account = Case("none").account
    await _trade(sessions, settings, account)
    with unit_of_work(sessions) as session:
        session.add(Account(name=RETIRED, broker=account.broker))
    state = paper_state_path(account, settings)
    before = state.read_text()

    with pytest.raises(IntegrityError):
        await reset_paper_account(sessions, settings, account, "ops", NOW)

    assert state.read_text() == before
    assert not state.with_name(f"{RETIRED}.json").exists()
    with sessions() as session:
        assert session.scalars(select(Account).where(Account.name == "acct")).one()


def test_the_command_says_what_it_would_do_then_does_it(aitrader: Run) -> None:
    code, out = aitrader("accounts", "reset")
    assert (code, out.strip()) == (0, "would reset paper: run again with --yes")
    code, out = aitrader("accounts", "reset", "--yes")
    assert code == 0, out
    assert "paper account 'paper' starts afresh with 100,000.00 cash" in out
    code, out = aitrader("accounts", "reset", "--account", "nope", "--yes")
    assert code == 1
    assert out.strip() == "error: no paper account named 'nope' is configured (have: paper)"
