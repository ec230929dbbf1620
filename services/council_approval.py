"""Resuming a council run paused for approval, through the Prefect API: the one place the
API process talks to Prefect about a council (the router says what, this says how).

The answer is the flow's `ApprovalInput` (reject, note, approver); Prefect's server
checks it against the schema the pause stored. Errors are ours, each in one line:
unknown flow run (NotFoundError), not paused or refused (ConflictError), Prefect
unreachable (JobLaunchError).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from uuid import UUID

import httpx

from models.errors import ConflictError, JobLaunchError, NotFoundError

POLL_S = 0.25


async def resume_council(
    flow_run_id: str, run_id: int, answer: Mapping[str, object], *, wait_s: float = 0.0
) -> None:
    """Resume `flow_run_id` (council run `run_id`) with `answer`.

    `wait_s`: the run announces its approval stage a moment before Prefect has it
    paused, so an approver who answers at once waits up to that long, not a 409.
    """
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.flow_runs import aresume_flow_run

    try:
        async with get_client() as client:
            state = (await client.read_flow_run(UUID(flow_run_id))).state
            deadline = time.monotonic() + wait_s
            while state is not None and state.is_running() and time.monotonic() < deadline:
                await asyncio.sleep(POLL_S)
                state = (await client.read_flow_run(UUID(flow_run_id))).state
        if state is None or not state.is_paused():
            name = state.name if state is not None else "without a state"
            raise ConflictError(f"council run {run_id} is not paused: its flow run is {name}")
        await aresume_flow_run(UUID(flow_run_id), run_input=dict(answer))
    except ObjectNotFound:
        raise NotFoundError(
            f"flow run {flow_run_id} of council run {run_id} is unknown to this Prefect API"
        ) from None
    except httpx.TransportError as exc:
        raise JobLaunchError(f"the Prefect API cannot be reached: {exc}") from None
    except RuntimeError as exc:  # the server refused the input or the resume
        raise ConflictError(f"council run {run_id} was not resumed: {exc}") from None
