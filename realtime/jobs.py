"""Starting jobs' flow runs from the realtime process, and minding the ones it runs itself.

Two ways, chosen by `JOBS_RUNNER` (auto: a Prefect server configured means
deployment):

* **deployment**: `run_deployment(..., timeout=0)` asks the Prefect server for
  a flow run of the type's deployment; a Prefect worker (or `aitrader up`'s
  served deployments) runs it. The flow's state hooks keep the job row up.
* **process**: a child process, `python -m flows.jobs JOB_ID`, runs the flow
  to its end. Never inside the server's event loop: a council holds its
  process for minutes (and a paused one for days), imports litellm and
  Prefect, and must not stall price streams. At most `JOBS_MAX_RUNNING` run
  at once; the rest wait `pending`. The child gets this process's settings
  (`child_environment`), its own session (a Ctrl-C on the server reaches it
  only through `stop`), and a log file under `JOBS_LOG_DIR`. If it dies
  before its flow run finished (killed, out of memory), its job is marked
  failed here with how it died, since its own hooks never ran. All children
  share one Prefect API (`SharedPrefectApi`: PREFECT_API_URL, else `aitrader
  up`'s, else one local server started with the first job), never a server
  each: concurrent ephemeral servers race to migrate one database.

Every job's end is written through db/queries/jobs.py. `reconcile` (at start
and every `RECONCILE_EVERY_S`) ends the jobs nobody else will: those whose
owning process on this machine is gone (an earlier server, a killed CLI
run), and deployment jobs whose flow run Prefect reports finished.

On `stop` the children still running are terminated: their flow runs crash,
their jobs fail with the reason. A paused council waiting for approval is one
of them; run deployments on a Prefect server to outlive server restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from uuid import UUID

from sqlalchemy.orm import Session, sessionmaker

from db.engine import read_sessions_of, transaction
from db.queries.jobs import (
    fail_jobs,
    finish_job,
    job_change,
    job_owner,
    record_runner,
    unfinished_jobs,
)
from models.enums import JobType, RunStatus
from models.errors import JobLaunchError
from models.jobs import DEPLOYMENTS, JobUpdate
from models.ops import Job
from realtime.background import BackgroundTask
from services.bus import Bus
from services.bus.job_updates import announce_job
from services.prefect_api import SharedPrefectApi
from services.prefect_server import PrefectServerError
from services.settings import JobRunner, Settings, child_environment

logger = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
RECONCILE_EVERY_S = 10.0
ORPHANED = (
    "the process that ran it stopped before it ended (a server restart, or a killed "
    "command): start it again as a new job"
)


class JobSupervisor:
    """Starts each job's flow run; owns the worker processes it started."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], bus: Bus | None = None
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.read_sessions = read_sessions_of(sessions)
        self.bus = bus  # set with Redis: what the children's hooks also publish on
        self.runner = _runner(settings)
        self._slots = asyncio.Semaphore(settings.jobs_max_running)
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconciler = BackgroundTask("jobs-reconcile")
        # One Prefect server for every worker process (started with the first one), so
        # concurrent jobs never each start, and race to migrate, a server of their own.
        self._prefect = SharedPrefectApi(settings, ephemeral=True)

    @property
    def running(self) -> int:
        return len(self._children)

    def worker_pids(self) -> dict[int, int]:
        """Job id -> pid of each worker process running now (operators, tests)."""
        return {job_id: proc.pid for job_id, proc in self._children.items()}

    async def start(self) -> None:
        """Reconcile once now, then every `RECONCILE_EVERY_S` (see `reconcile`)."""
        await self.reconcile()
        self._reconciler.start(self._reconcile_loop())

    async def reconcile(self) -> list[JobUpdate]:
        """End the jobs whose end nobody else will report, with why; the changes made.

        * A job whose owning process on this machine is gone: the server that ran it in
          a worker process (stopped or killed, its workers with it), or the CLI process
          that sat a council itself. Jobs owned by live processes (another replica, a
          CLI still running) are left alone.
        * A job run by a deployment whose flow run the Prefect server reports finished
          (a worker killed mid-run, a crash no hook lived to tell): it ends as the flow
          run did, with its message.
        """
        updates = await asyncio.to_thread(self._fail_orphans)
        if self.runner is JobRunner.DEPLOYMENT or self.settings.prefect_api_url:
            updates += await self._follow_deployments()
        for update in updates:
            logger.warning("job.reconciled", extra={"job_id": update.id, "error": update.error})
            await self._announce(update)
        return updates

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_EVERY_S)
            try:
                await self.reconcile()
            except Exception:  # a process edge: one failed pass must not end the loop
                logger.exception("jobs.reconcile_failed")

    async def launch(self, job_id: int, kind: JobType) -> None:
        """Start job `job_id`'s flow run (or queue it for a free process slot).

        `JobLaunchError` if it could not be started: nothing runs, and the caller removes
        the job it recorded (a request that answers an error did nothing)."""
        if self.runner is JobRunner.DEPLOYMENT:
            await self._run_deployment(job_id, kind)
            return
        await asyncio.to_thread(self._mark, job_id, runner="process", owner=job_owner())
        task = asyncio.create_task(self._run_process(job_id), name=f"job-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for proc in list(self._children.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        if self._children:
            await asyncio.wait(
                [asyncio.create_task(p.wait()) for p in self._children.values()],
                timeout=STOP_GRACE_S,
            )
        for proc in list(self._children.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._reconciler.stop()
        await self._prefect.aclose()

    # --- deployment ------------------------------------------------------------------

    async def _run_deployment(self, job_id: int, kind: JobType) -> None:
        from prefect.deployments import arun_deployment
        from prefect.exceptions import ObjectNotFound

        parameters, key = await asyncio.to_thread(self._deployment_call, job_id)
        name = DEPLOYMENTS[kind]
        try:
            flow_run = await arun_deployment(
                name=name,
                parameters=parameters,
                timeout=0,
                as_subflow=False,
                idempotency_key=key,
            )
        except ObjectNotFound:
            reason = f"no deployment {name!r} on the Prefect server: `prefect deploy` it first"
            raise JobLaunchError(reason) from None
        except Exception as exc:  # any client or server failure: the caller undoes the job
            reason = f"the Prefect server refused the run of {name!r}: {exc}"
            raise JobLaunchError(reason) from exc
        await asyncio.to_thread(
            self._mark, job_id, runner="deployment", flow_run_id=str(flow_run.id)
        )

    # --- process ---------------------------------------------------------------------

    async def _run_process(self, job_id: int) -> None:
        async with self._slots:
            log_path = self._log_path(job_id)
            try:
                prefect_env = await self._prefect.child_env()
            except PrefectServerError as exc:
                await self._fail(job_id, f"no Prefect server for its flow run: {exc}")
                return
            try:
                with log_path.open("ab") as log:
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "flows.jobs",
                        str(job_id),
                        env=child_environment(self.settings, prefect_env),
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                    )
            except OSError as exc:
                await self._fail(job_id, f"worker process not started: {exc}")
                return
            self._children[job_id] = proc
            logger.info("job.started", extra={"job_id": job_id, "pid": proc.pid})
            try:
                code = await proc.wait()
            finally:
                self._children.pop(job_id, None)
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
        reason = f"its worker process {how} before the flow run ended"
        changed = await self._fail(job_id, f"{reason} (log: {log_path})")
        logger.info("job.exited", extra={"job_id": job_id, "code": code, "marked": changed})

    def _log_path(self, job_id: int) -> Path:
        directory = self.settings.jobs_log_dir
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"job-{job_id}.log"

    # --- the job row -----------------------------------------------------------------

    def _mark(
        self,
        job_id: int,
        *,
        runner: str,
        flow_run_id: str | None = None,
        owner: dict[str, object] | None = None,
    ) -> None:
        transaction(self.sessions, lambda s: record_runner(s, job_id, runner, flow_run_id, owner))

    def _deployment_call(self, job_id: int) -> tuple[dict[str, object], str]:
        with self.read_sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            # Unique across databases that share one Prefect server (ids restart in each).
            key = f"aitrader-job-{job_id}-{job.created_at.timestamp():.6f}"
            return {**job.params, "job_id": job_id}, key

    def _deployment_jobs(self) -> list[tuple[int, str]]:
        with self.read_sessions() as session:
            return [
                (job.id, job.flow_run_id)
                for job in unfinished_jobs(session, runner="deployment")
                if job.flow_run_id
            ]

    def _fail_orphans(self) -> list[JobUpdate]:
        """Read who owns each unfinished job; take the write lock only if one is orphaned
        (this runs every few seconds)."""
        with self.read_sessions() as session:
            ids = [job.id for job in unfinished_jobs(session) if _owner_gone(job)]
        if not ids:
            return []
        return transaction(self.sessions, lambda s: fail_jobs(s, ids, ORPHANED))

    async def _follow_deployments(self) -> list[JobUpdate]:
        followed = await asyncio.to_thread(self._deployment_jobs)
        updates: list[JobUpdate] = []
        if not followed:
            return updates  # the usual case: Prefect's client is not even imported
        from prefect import get_client

        async with get_client() as client:
            for job_id, flow_run_id in followed:
                try:
                    flow_run = await client.read_flow_run(UUID(flow_run_id))
                except Exception as exc:  # the server is away: try again next pass
                    logger.warning(
                        "jobs.follow_failed", extra={"job_id": job_id, "error": str(exc)}
                    )
                    continue
                state = flow_run.state
                if state is None or not state.is_final():
                    continue
                change = job_change(job_id, state, flow_run_id)
                if change is not None and (
                    update := await asyncio.to_thread(transaction, self.sessions, change)
                ):
                    updates.append(update)
        return updates

    async def _fail(self, job_id: int, reason: str) -> bool:
        """Mark the job failed unless it already ended; True if this changed it."""
        update = await asyncio.to_thread(
            transaction,
            self.sessions,
            lambda s: finish_job(s, job_id, RunStatus.FAILED, error=reason),
        )
        if update is None:
            return False
        await self._announce(update)
        return True

    async def _announce(self, update: JobUpdate) -> None:
        if self.bus is not None:
            await announce_job(self.bus, update)


def _owner_gone(job: Job) -> bool:
    """True if the process that owns `job`'s end ran on this machine and is gone."""
    owner = (job.result or {}).get("owner")
    if not isinstance(owner, dict):
        return job.runner == "process"  # recorded before owners were: that server is gone
    if owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    return isinstance(pid, int) and pid != os.getpid() and not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _runner(settings: Settings) -> JobRunner:
    if settings.jobs_runner is not JobRunner.AUTO:
        return settings.jobs_runner
    return JobRunner.DEPLOYMENT if settings.prefect_api_url else JobRunner.PROCESS
