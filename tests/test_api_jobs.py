"""Jobs as flow runs, both ways: a deployment on the Prefect server (run here by
`prefect flow-run execute`, as a worker would), and a worker process of the server, whose
death is noticed. The job row follows the flow run's state through the flow's hooks."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select

from models.ops import Job
from realtime.runtime import Runtime
from services.settings import Settings, child_environment
from tests.api_support import Api, api_settings, running_api

RESEARCH = {
    "type": "research",
    "params": {"as_of": "2019-06-03", "universe": ["AAPL", "MSFT", "XOM"]},
}


@pytest.fixture
def deployment_api(
    api_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Api]:
    monkeypatch.chdir(tmp_path)
    settings = api_settings(api_db_url, jobs_runner="deployment", log_level="WARNING")
    with running_api(settings) as api:
        yield api


@pytest.fixture
def process_api(
    api_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Api]:
    monkeypatch.chdir(tmp_path)
    settings = api_settings(api_db_url, jobs_log_dir=tmp_path / "jobs", log_level="WARNING")
    with running_api(settings) as api:
        yield api


def _until(what: str, check: Any, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _ended(api: Api, job_id: int) -> Any:
    """A check for `_until`: the job's state once it has ended (None while it runs, or
    while the server answers 503, as SQLite recovering from a killed writer does)."""

    def check() -> dict[str, Any] | None:
        response = api.get(f"/api/jobs/{job_id}")
        if response.status_code == 503:
            return None
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state if state["status"] not in {"pending", "running"} else None

    return check


REPO = Path(__file__).resolve().parent.parent


async def deploy_council() -> None:
    from prefect.types.entrypoint import EntrypointType

    from flows.weekly_council import weekly_council

    deployment = weekly_council.to_deployment(
        name="weekly-council", entrypoint_type=EntrypointType.MODULE_PATH
    )  # async-dispatched: inside a running loop it is a coroutine
    assert inspect.isawaitable(deployment)
    applied = (await deployment).apply()
    assert inspect.isawaitable(applied)
    await _load_from_checkout(await applied)


async def deploy_backtest() -> None:
    from prefect.types.entrypoint import EntrypointType

    from flows.backtest import backtest

    deployment = backtest.to_deployment(
        name="backtest", entrypoint_type=EntrypointType.MODULE_PATH
    )  # async-dispatched, as above
    assert inspect.isawaitable(deployment)
    applied = (await deployment).apply()
    assert inspect.isawaitable(applied)
    await _load_from_checkout(await applied)


async def deploy_model_jobs() -> None:
    """The training, pattern-scan, suggestion, sentiment and council-backtest deployments,
    as `deployments.serve` names them (models/jobs.py `DEPLOYMENTS`)."""
    from prefect.types.entrypoint import EntrypointType

    from flows.council_backtest import council_backtest
    from flows.pattern_scan import pattern_scan
    from flows.sentiment import sentiment_analysis
    from flows.suggestion import suggestion
    from flows.training import training

    for flow, name in ((training, "training"), (pattern_scan, "pattern-scan"),
                       (suggestion, "suggestion"),
                       (sentiment_analysis, "sentiment-analysis"),
                       (council_backtest, "council-backtest")):  # fmt: skip
        deployment = flow.to_deployment(name=name, entrypoint_type=EntrypointType.MODULE_PATH)
        assert inspect.isawaitable(deployment)
        applied = (await deployment).apply()
        assert inspect.isawaitable(applied)
        await _load_from_checkout(await applied)


async def _load_from_checkout(deployment_id: Any) -> None:
    """Give the deployment the pull step `prefect deploy` records from prefect.yaml
    (`pull: null`): run in this checkout. Without one, `prefect flow-run execute` copies the
    deployment's whole directory, .venv included, into its working directory (~80 s)."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    step = {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
    async with get_client() as client:
        await client.update_deployment(deployment_id, DeploymentUpdate(pull_steps=[step]))


async def _flow_run(flow_run_id: str) -> Any:
    from prefect import get_client

    async with get_client() as client:
        return await client.read_flow_run(UUID(flow_run_id))


def test_without_the_deployment_the_request_is_a_503_that_leaves_no_job(
    deployment_api: Api,
) -> None:
    async def drop() -> None:
        from prefect import get_client
        from prefect.exceptions import ObjectNotFound

        async with get_client() as client:
            try:
                found = await client.read_deployment_by_name("weekly-council/weekly-council")
            except ObjectNotFound:
                return
            await client.delete_deployment(found.id)

    asyncio.run(drop())
    refused = deployment_api.post("/api/jobs", json=RESEARCH)
    assert refused.status_code == 503
    assert "no deployment 'weekly-council/weekly-council'" in refused.json()["detail"]
    assert refused.headers["retry-after"]
    with deployment_api.sessions() as session:  # a 503 did nothing: a retry may act
        assert session.scalars(select(Job)).all() == []


def test_a_deployment_job_is_a_flow_run_whose_hooks_move_the_job(
    deployment_api: Api, api_db_url: str, tmp_path: Path
) -> None:
    asyncio.run(deploy_council())
    started = deployment_api.post("/api/jobs", json=RESEARCH)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["runner"] == "deployment"
    flow_run = asyncio.run(_flow_run(job["flow_run_id"]))
    assert flow_run.parameters["job_id"] == job["id"]
    assert flow_run.parameters["stop_after"] == "research"
    assert flow_run.state.is_scheduled()
    # What a Prefect worker does with the run: execute it in a process of its own.
    from prefect.settings import PREFECT_API_URL

    runtime: Runtime = deployment_api.app.state.runtime
    env = child_environment(runtime.settings, {"PREFECT_API_URL": PREFECT_API_URL.value()})
    subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "execute", job["flow_run_id"]],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
        capture_output=True,
        timeout=180,
    )
    done = deployment_api.get(f"/api/jobs/{job['id']}").json()
    assert done["status"] == "completed", done
    assert done["result"]["stopped_after"] == "research"
    assert done["started_at"] is not None
    assert done["finished_at"] is not None
    research = deployment_api.get("/api/council/current").json()
    assert research["run"]["job_id"] == job["id"]
    assert research["run"]["detail"] == "stopped after research, as asked"
    assert research["decisions"] == []


def test_a_worker_process_that_dies_fails_its_job_with_the_reason(process_api: Api) -> None:
    runtime: Runtime = process_api.app.state.runtime
    job = process_api.post("/api/jobs", json={**RESEARCH, "stop_after": "pitches"}).json()
    assert job["runner"] == "process"
    pid = _until("the worker process", lambda: runtime.jobs.worker_pids().get(job["id"]))

    def sitting() -> int | None:  # kill it mid-run: its council run exists, and is running
        params = process_api.get(f"/api/jobs/{job['id']}").json()["params"]
        run_id = params.get("council_run_id")
        return run_id if isinstance(run_id, int) else None

    run_id = _until("the council run", sitting)
    os.killpg(pid, signal.SIGKILL)

    failed = _until("the job to fail", _ended(process_api, job["id"]))
    assert failed["status"] == "failed"
    assert "killed by SIGKILL" in failed["error"]
    assert failed["finished_at"] is not None
    run = process_api.get(f"/api/council/{run_id}").json()["run"]
    assert run["status"] == "failed"  # not left running behind its job
    assert "killed by SIGKILL" in run["detail"]


def test_settings_given_in_code_reach_the_worker_process(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/x.db", chat_execute=True)
    env = child_environment(settings)
    code = (
        "from services.settings import Settings\n"
        "s = Settings()\n"
        "print(s.database_url, s.chat_execute)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [f"sqlite:///{tmp_path}/x.db", "True"]


BACKTEST = {
    "type": "backtest",
    "params": {
        "strategy": "sma_cross",
        "params": {"fast": [5, 10], "slow": 50},
        "symbols": ["AAPL", "MSFT"],
        "start": "2016-01-01",
        "end": "2019-12-31",
    },
}


def test_a_backtest_job_runs_the_backtest_flow_and_links_its_run(process_api: Api) -> None:
    from models.strategy import Backtest

    job = process_api.post("/api/jobs", json=BACKTEST)
    assert job.status_code == 202, job.text

    done = _until("the backtest job to end", _ended(process_api, job.json()["id"]), 120)
    assert done["status"] == "completed", done
    with process_api.sessions() as session:
        (run,) = session.scalars(select(Backtest)).all()
        assert run.job_id == done["id"]
        assert run.kind == "sweep"
        assert run.best_params is not None
        assert run.best_params["fast"] in (5.0, 10.0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"strategy": "os:system"}, "body.backtest.params"),
        ({"symbols": ["AAPL", "NOPE"]}, "body.params.symbols"),
        ({"end": "2015-01-01"}, "body.backtest.params"),
        (
            {"config": {"sizing": {"mode": "equity_fraction", "value": 3}}},
            "body.backtest.params.config.sizing",
        ),
        ({"params": {"fast": 10, "slow": 50, "nope": 3}}, "body.params.params"),  # unknown
        ({"params": {"fast": 50, "slow": 10}}, "body.params.params"),  # fast >= slow
        ({"params": {"fast": [50, 60], "slow": 10}}, "body.params.params"),  # no set means it
    ],
)
def test_a_bad_backtest_job_is_a_422_naming_the_field_and_writes_nothing(
    api: Api, change: dict[str, Any], field: str
) -> None:
    body = {**BACKTEST, "params": {**BACKTEST["params"], **change}}  # type: ignore[dict-item]
    _refused_writing_nothing(api, body, field)


COUNCIL_BACKTEST = {
    "type": "council_backtest",
    "params": {
        "start": "2019-01-01",
        "end": "2019-06-30",
        "universe": ["AAPL", "MSFT"],
        "rebalance": "monthly",
    },
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"universe": ["AAPL", "NOPE"]}, "body.params.universe"),
        ({"start": "2010-01-04"}, "body.params.start"),  # before the stored bars
        ({"end": "2020-06-30"}, "body.params.end"),  # after them
        ({"end": "2019-01-01"}, "body.council_backtest.params"),  # not after start
        ({"account": "nobody"}, "body.params.account"),
        ({"rebalance": "daily"}, "body.council_backtest.params.rebalance"),
        ({"budget_usd": -1}, "body.council_backtest.params.budget_usd"),
        ({"cutoff_policy": "ignore"}, "body.council_backtest.params.cutoff_policy"),
        ({"members": [{"name": "x"}]}, "body.council_backtest.params.members"),  # not over HTTP
    ],
)
def test_a_bad_council_backtest_job_is_a_422_naming_the_field_and_writes_nothing(
    api: Api, change: dict[str, Any], field: str
) -> None:
    body = {**COUNCIL_BACKTEST, "params": {**COUNCIL_BACKTEST["params"], **change}}  # type: ignore[dict-item]
    _refused_writing_nothing(api, body, field)


def _refused_writing_nothing(api: Api, body: dict[str, Any], field: str) -> None:
    """`body` is a 422 naming `field` (or a field inside it), and no job row was written."""
    response = api.post("/api/jobs", json=body)
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_council_backtest_job_runs_its_flow_in_a_worker_process(process_api: Api) -> None:
    """Dispatched to the council-backtest flow (flows/jobs.py), which refuses a range holding
    no whole week before it sits anything: the job fails with that cause, and no backtest
    row was written."""
    from models.track_record import CouncilBacktest

    body = {"type": "council_backtest", "params": {"start": "2019-06-03", "end": "2019-06-05"}}
    job = process_api.post("/api/jobs", json=body)
    assert job.status_code == 202, job.text
    assert job.json()["runner"] == "process"

    done = _until("the council backtest job to end", _ended(process_api, job.json()["id"]), 120)
    assert done["status"] == "failed", done
    assert "no weekly sitting between 2019-06-03 and 2019-06-05" in done["error"]
    assert done["flow_run_id"] is not None
    with process_api.sessions() as session:
        assert session.scalars(select(CouncilBacktest)).all() == []
