"""`CouncilRun`: what a council sitting's stage tasks share (the database, the gateway, the
run's ids, the bus when Redis is configured, and how the sitting is shown: its cutoff
caveat, its aliases, its vote weighting). The flow in flows/weekly_council.py builds
one per run; the tasks in flows/council_tasks.py take it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.engine import transaction
from db.queries.jobs import finish_council_run, record_stage
from models.council import CouncilRun as CouncilRunRow
from models.enums import RunStatus
from models.jobs import JobUpdate
from services.bus import Bus, make_bus
from services.bus.job_updates import announce_job
from services.llm.gateway import LLMGateway
from services.settings import Settings
from tasks.council.anonymise import Aliases


class CouncilRun:
    """What the stages share: the database, the gateway and the run's ids."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        run_id: int,
        job_id: int | None,
        gateway: LLMGateway,
        caveat: str | None = None,
        aliases: Aliases | None = None,
        weighting: bool = False,
    ) -> None:
        """`job_id` None: a council backtest's sitting, followed by the backtest's job.
        `caveat` (the members who may remember what followed) heads every artifact.
        `aliases`: an anonymised sitting (tasks/council/anonymise.py): the stages see the
        aliased snapshot, and what they produce is stored real (`real`). `weighting`: the
        chairman sees the pitches ranked by skill-weighted votes (tasks/council/skill.py);
        both tallies are kept either way."""
        self.settings = settings
        self.sessions = sessions
        self.run_id = run_id
        self.job_id = job_id
        self.gateway = gateway
        self.caveat = caveat
        self.aliases = aliases
        self.weighting = weighting
        self.bus: Bus | None = make_bus(settings.redis_url) if settings.redis_url else None

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()

    async def progress(self, stage: str, **facts: Any) -> None:
        """The run reached `stage`: its job row says so, and with Redis `jobs:updates` does
        (without Redis the realtime process polls the jobs table: it cannot hear this one)."""
        job_id = self.job_id
        if job_id is None:
            return
        update = await asyncio.to_thread(
            transaction,
            self.sessions,
            lambda s: record_stage(s, job_id, stage, council_run_id=self.run_id, **facts),
        )
        await self._announce(update)

    async def finish(
        self, status: RunStatus, detail: str | None = None, **facts: Any
    ) -> CouncilRunRow:
        """End the run and its job together, as `status` with `detail` (the cause, if not
        completed); the run as it ended, with its cost."""
        run_id = self.run_id
        row, update = await asyncio.to_thread(
            transaction,
            self.sessions,
            lambda s: finish_council_run(s, run_id, status, detail, **facts),
        )
        await self._announce(update)
        return row

    def real(self, value: Any) -> Any:
        """A stage's output (JSON) as the tables keep it: real symbols and prices."""
        return self.aliases.record(value) if self.aliases else value

    def real_symbol(self, symbol: str) -> str:
        return self.aliases.real(symbol) if self.aliases else symbol

    def described(self, description: str) -> str:
        """An artifact's description, headed by the run's caveat when it has one."""
        return f"{self.caveat}. {description}" if self.caveat else description

    async def _announce(self, update: JobUpdate | None) -> None:
        if update is not None and self.bus is not None:
            await announce_job(self.bus, update)
