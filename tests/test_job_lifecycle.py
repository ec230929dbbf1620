"""One owner of a job's and a council run's transitions (db/queries/jobs.py): a finished job
never moves again, a failure always has its cause, a run and its job end together, and a
job whose owning process died is ended by the reconciler. On SQLite and Postgres."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.engine import transaction, unit_of_work
from db.queries.jobs import (
    create_job,
    failure_cause,
    finish_council_run,
    finish_job,
    job_change,
    open_council_run,
    record_runner,
    record_stage,
    start_job,
)
from models.council import CouncilRun
from models.enums import RunStatus
from models.errors import ConfigurationError, describe_failure
from models.ops import Job
from realtime.jobs import JobSupervisor
from services.settings import Settings

AS_OF = datetime(2019, 12, 28, tzinfo=UTC)


def _job(sessions: sessionmaker[Session]) -> int:
    with unit_of_work(sessions) as session:
        return create_job(session, "backtest", {}, None, None).id


def _status(sessions: sessionmaker[Session], job_id: int) -> tuple[RunStatus, str | None]:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status, job.error


def test_a_job_runs_through_its_stages_and_a_finished_one_never_moves_again(
    sessions: sessionmaker[Session],
) -> None:
    job_id = _job(sessions)
    started = transaction(sessions, lambda s: start_job(s, job_id, flow_run_id="fr-1"))
    assert started is not None
    assert (started.status, started.flow_run_id) == (RunStatus.RUNNING, "fr-1")
    staged = transaction(sessions, lambda s: record_stage(s, job_id, "research", packs=2))
    assert staged is not None
    assert (staged.stage, staged.message_data()["packs"]) == ("research", 2)
    done = transaction(sessions, lambda s: finish_job(s, job_id, RunStatus.COMPLETED))
    assert done is not None
    assert done.status is RunStatus.COMPLETED
    # Late hooks and a supervisor that noticed too late: no-ops, not reopenings.
    assert transaction(sessions, lambda s: start_job(s, job_id)) is None
    assert transaction(sessions, lambda s: record_stage(s, job_id, "late")) is None
    late = transaction(
        sessions, lambda s: finish_job(s, job_id, RunStatus.FAILED, error="too late")
    )
    assert late is None
    assert _status(sessions, job_id) == (RunStatus.COMPLETED, None)


def test_waiting_for_approval_is_gone_once_the_next_stage_or_the_end_is_reached(
    sessions: sessionmaker[Session],
) -> None:
    """A completed council job said `waiting_for: approval` long after it was approved."""

    def approval(session: Session, job_id: int) -> None:
        start_job(session, job_id, flow_run_id="fr-1")
        record_stage(session, job_id, "approval", waiting_for="approval", decisions=3)

    def execution(session: Session, job_id: int) -> None:
        record_stage(session, job_id, "execution")

    def end(session: Session, job_id: int) -> None:
        finish_job(session, job_id, RunStatus.COMPLETED)

    for then in (execution, end):
        job_id = _job(sessions)
        with unit_of_work(sessions) as session:
            approval(session, job_id)
        with unit_of_work(sessions) as session:
            then(session, job_id)
        with sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            assert job.result is not None
            assert "waiting_for" not in job.result
            assert job.result["decisions"] == 3  # the stage's lasting facts stay


def test_a_job_that_did_not_complete_needs_its_cause(sessions: sessionmaker[Session]) -> None:
    job_id = _job(sessions)
    with pytest.raises(ValueError, match="needs its cause"), unit_of_work(sessions) as session:
        finish_job(session, job_id, RunStatus.FAILED)
    with pytest.raises(ValueError, match="not an end state"), unit_of_work(sessions) as session:
        finish_job(session, job_id, RunStatus.RUNNING, error="x")
    assert _status(sessions, job_id) == (RunStatus.PENDING, None)


def test_a_council_run_and_its_job_end_together_either_way(
    sessions: sessionmaker[Session],
) -> None:
    def open_run(flow_run_id: str) -> tuple[int, int]:
        run, update = transaction(
            sessions,
            lambda s: open_council_run(
                s, job_id=None, flow_run_id=flow_run_id, as_of=AS_OF, budget_usd=None, params={}
            ),
        )
        assert update is not None
        assert (update.status, update.stage) == (RunStatus.RUNNING, "started")
        assert run.job_id is not None
        return run.id, run.job_id

    run_id, job_id = open_run("fr-a")  # the job ends: its run ends with it
    transaction(sessions, lambda s: finish_job(s, job_id, RunStatus.FAILED, error="boom"))
    with sessions() as session:
        run = session.get(CouncilRun, run_id)
        assert run is not None
        assert (run.status, run.detail) == (RunStatus.FAILED, "boom")
        assert run.finished_at is not None

    run_id, job_id = open_run("fr-b")  # the run ends: its job ends with it
    transaction(sessions, lambda s: finish_council_run(s, run_id, RunStatus.CANCELED, "budget"))
    assert _status(sessions, job_id) == (RunStatus.CANCELED, "budget")


def test_failure_causes_are_the_first_real_error_in_one_line() -> None:
    group = ExceptionGroup(
        "unhandled errors in a TaskGroup",
        [ConfigurationError("no price for model 'x'"), ConfigurationError("again")],
    )
    assert describe_failure(group) == "no price for model 'x'"
    assert describe_failure(RuntimeError("first line\nsecond")) == "RuntimeError: first line"
    nested = BaseExceptionGroup("outer", [ExceptionGroup("inner", [KeyError("k")])])
    assert describe_failure(nested) == "KeyError: 'k'"


def test_a_prefect_state_becomes_its_job_change() -> None:
    from prefect.states import Cancelled, Completed, Crashed, Failed, Running

    assert job_change(1, Running(), "fr") is not None
    assert job_change(1, Completed(), "fr") is not None
    assert failure_cause(Failed(message="Flow run encountered an exception: ValueError: bad")) == (
        "ValueError: bad"
    )
    failed_with: Any = Failed(data=ExceptionGroup("g", [ConfigurationError("the cause")]))
    assert failure_cause(failed_with) == "the cause"
    assert failure_cause(Crashed(message="Execution was aborted")) == (
        "the flow run crashed: Execution was aborted"
    )
    assert job_change(1, Cancelled(), "fr") is not None


@pytest.mark.anyio
async def test_the_supervisor_ends_jobs_whose_owner_died_and_leaves_live_owners_alone(
    sessions: sessionmaker[Session], migrated_db_url: str
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(dead.stdout)
    here = socket.gethostname()
    orphan, alive, elsewhere = _job(sessions), _job(sessions), _job(sessions)
    with unit_of_work(sessions) as session:
        record_runner(session, orphan, "cli", owner={"host": here, "pid": dead_pid})
        record_runner(session, alive, "cli", owner={"host": here, "pid": os.getppid()})
        record_runner(session, elsewhere, "process", owner={"host": "other", "pid": dead_pid})
        start_job(session, orphan)
    supervisor = JobSupervisor(Settings(database_url=migrated_db_url), sessions)
    updates = await supervisor.reconcile()
    assert [u.id for u in updates] == [orphan]
    status, error = _status(sessions, orphan)
    assert status is RunStatus.FAILED
    assert error is not None
    assert "stopped before it ended" in error
    assert _status(sessions, alive)[0] is RunStatus.PENDING
    assert _status(sessions, elsewhere)[0] is RunStatus.PENDING
