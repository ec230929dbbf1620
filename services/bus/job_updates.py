"""Announcing a job's move on `jobs:updates`, the one way every process does it.

The row (db/queries/jobs.py) is the truth; the announcement is a live push
for dashboards. So an unreachable bus is a warning, never a failure of the
job: the realtime process also polls the table when there is no Redis.
"""

from __future__ import annotations

import logging

from models.bus import JOBS_UPDATES, BusMessage
from models.jobs import JobUpdate
from services.bus.protocol import Bus, BusUnavailableError

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "job.updated"


async def announce_job(bus: Bus, update: JobUpdate) -> None:
    """Publish `update`; a bus outage is logged and swallowed (the row has it)."""
    try:
        await bus.publish(JOBS_UPDATES, BusMessage(type=MESSAGE_TYPE, data=update.message_data()))
    except BusUnavailableError:
        logger.warning("jobs.announce_failed", extra={"job_id": update.id, "status": update.status})
