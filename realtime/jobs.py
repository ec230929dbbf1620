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
  failed here, since its own hooks never ran.

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
import sys
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from models.base import utcnow
from models.bus import JOBS_UPDATES, BusMessage
from models.enums import JobType, RunStatus
from models.errors import JobLaunchError
from models.jobs import DEPLOYMENTS
from models.ops import Job
from services.bus import Bus, BusUnavailableError
from services.settings import JobRunner, Settings, child_environment

logger = logging.getLogger(__name__)

FINISHED = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED}
STOP_GRACE_S = 10.0


class JobSupervisor:
    """Starts each job's flow run; owns the worker processes it started."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], bus: Bus | None = None
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.bus = bus  # set with Redis: what the children's hooks also publish on
        self.runner = _runner(settings)
        self._slots = asyncio.Semaphore(settings.jobs_max_running)
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._children)

    def worker_pids(self) -> dict[int, int]:
        """Job id -> pid of each worker process running now (operators, tests)."""
        return {job_id: proc.pid for job_id, proc in self._children.items()}

    async def launch(self, job_id: int, kind: JobType) -> None:
        """Start job `job_id`'s flow run (or queue it for a free process slot)."""
        if self.runner is JobRunner.DEPLOYMENT:
            await self._run_deployment(job_id, kind)
            return
        await asyncio.to_thread(self._mark, job_id, runner="process")
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

    # --- deployment ------------------------------------------------------------------

    async def _run_deployment(self, job_id: int, kind: JobType) -> None:
        from prefect.deployments import arun_deployment
        from prefect.exceptions import ObjectNotFound

        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            parameters = {**job.params, "job_id": job_id}
            # Unique across databases that share one Prefect server (ids restart in each).
            key = f"aitrader-job-{job_id}-{job.created_at.timestamp():.6f}"
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
            await self._fail(job_id, reason)
            raise JobLaunchError(reason) from None
        except Exception as exc:  # any client or server failure: recorded on the job, then 503
            reason = f"the Prefect server refused the run of {name!r}: {exc}"
            await self._fail(job_id, reason)
            raise JobLaunchError(reason) from exc
        await asyncio.to_thread(
            self._mark, job_id, runner="deployment", flow_run_id=str(flow_run.id)
        )

    # --- process ---------------------------------------------------------------------

    async def _run_process(self, job_id: int) -> None:
        async with self._slots:
            log_path = self._log_path(job_id)
            try:
                with log_path.open("ab") as log:
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "flows.jobs",
                        str(job_id),
                        env=child_environment(self.settings, _prefect_env()),
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
        reason = f"its worker process exited with code {code} before the flow run ended"
        changed = await self._fail(job_id, f"{reason} (log: {log_path})")
        logger.info("job.exited", extra={"job_id": job_id, "code": code, "marked": changed})

    def _log_path(self, job_id: int) -> Path:
        directory = self.settings.jobs_log_dir
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"job-{job_id}.log"

    # --- the job row -----------------------------------------------------------------

    def _mark(self, job_id: int, *, runner: str, flow_run_id: str | None = None) -> None:
        with unit_of_work(self.sessions) as session:
            job = session.get(Job, job_id)
            if job is not None:
                job.runner = runner
                job.flow_run_id = job.flow_run_id or flow_run_id

    async def _fail(self, job_id: int, reason: str) -> bool:
        """Mark the job failed unless it already ended; True if this changed it."""
        data = await asyncio.to_thread(self._write_failure, job_id, reason)
        if data is None:
            return False
        if self.bus is not None:
            await self._announce(data)
        return True

    def _write_failure(self, job_id: int, reason: str) -> dict[str, object] | None:
        with unit_of_work(self.sessions) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.status in FINISHED:
                return None
            job.status = RunStatus.FAILED
            job.error = reason
            job.finished_at = utcnow()
            return {"id": job.id, "type": job.type, "status": str(job.status), "error": reason}

    async def _announce(self, data: dict[str, object]) -> None:
        assert self.bus is not None
        try:
            await self.bus.publish(JOBS_UPDATES, BusMessage(type="job.updated", data=data))
        except BusUnavailableError:
            logger.warning("jobs:updates unreachable; job %s not announced", data["id"])


def _runner(settings: Settings) -> JobRunner:
    if settings.jobs_runner is not JobRunner.AUTO:
        return settings.jobs_runner
    return JobRunner.DEPLOYMENT if settings.prefect_api_url else JobRunner.PROCESS


def _prefect_env() -> dict[str, str]:
    """The Prefect API this process talks to (a test harness sets it in code, not in env)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return {"PREFECT_API_URL": url} if url else {}
