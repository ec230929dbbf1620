"""`python -m deployments.serve`: the weekly council, the daily account sync, the quarter-
hourly sentiment analysis and the weekly training, served with their schedules, and the
backtest, council backtest, pattern scan and suggestion flows (no schedule: started by API
jobs or the UI), no work pool.

This is the local way to run deployments (`aitrader up` starts it beside a
Prefect server): one long-lived process polls the Prefect API at
`PREFECT_API_URL` for runs of its deployments, scheduled or started from the
UI, and executes them in subprocesses. Production uses `prefect.yaml` and a
process work pool instead; the deployment is the same one — name, cron,
timezone, parameters, concurrency limit — and tests/test_cli_council.py checks
that the two definitions agree.

Served runs load the flow by module path (`flows.weekly_council.weekly_council`)
rather than by file, so the process can start from any working directory.
Importing this module has no side effects; `main()` blocks until Ctrl-C/SIGTERM,
and either ends it quietly with exit code 0 at any stage: Prefect and the flows
are imported inside the functions, so a stop during the seconds of start-up
leaves no traceback either (`aitrader up` may be stopped at any moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

WEEKLY_COUNCIL = "weekly-council"
WEEKLY_COUNCIL_CRON = "0 6 * * 1"  # Mondays 06:00, before the US open
WEEKLY_COUNCIL_TIMEZONE = "America/New_York"
WEEKLY_COUNCIL_PARAMETERS: dict[str, Any] = {"approval": "manual"}
# One council at a time: the LLM gateway's per-provider limit is process-wide
# and relies on it (docs/decisions/0007).
WEEKLY_COUNCIL_CONCURRENCY = 1


def council_deployment() -> RunnerDeployment:
    """The weekly council deployment as `prefect.yaml` declares it, ready to serve."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.weekly_council import weekly_council

    deployment = weekly_council.to_deployment(
        name=WEEKLY_COUNCIL,
        description="The weekly council; each run pauses for human approval.",
        schedules=[Cron(WEEKLY_COUNCIL_CRON, timezone=WEEKLY_COUNCIL_TIMEZONE)],
        parameters=dict(WEEKLY_COUNCIL_PARAMETERS),
        concurrency_limit=WEEKLY_COUNCIL_CONCURRENCY,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # `to_deployment` is async-dispatched: called outside an event loop it returns the object.
    return cast("RunnerDeployment", deployment)


ACCOUNT_SYNC = "account-sync"
ACCOUNT_SYNC_CRON = "30 16 * * 1-5"  # weekdays 16:30, after the US close
ACCOUNT_SYNC_TIMEZONE = "America/New_York"


def sync_deployment() -> RunnerDeployment:
    """The daily account sync as `prefect.yaml` declares it: fills, exits, snapshots."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.execution import sync_accounts

    deployment = sync_accounts.to_deployment(
        name=ACCOUNT_SYNC,
        description="Books each account's fills and bracket exits and snapshots it; no orders.",
        schedules=[Cron(ACCOUNT_SYNC_CRON, timezone=ACCOUNT_SYNC_TIMEZONE)],
        concurrency_limit=1,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return cast("RunnerDeployment", deployment)


BACKTEST = "backtest"
# Two sweeps at a time: each already uses BACKTEST_WORKERS threads (or a Dask cluster).
BACKTEST_CONCURRENCY = 2


def backtest_deployment() -> RunnerDeployment:
    """The backtest flow as `prefect.yaml` declares it: run on request, never scheduled."""
    from prefect.types.entrypoint import EntrypointType

    from flows.backtest import backtest

    deployment = backtest.to_deployment(
        name=BACKTEST,
        description="A backtest, parameter sweep or walk-forward of a signal strategy.",
        concurrency_limit=BACKTEST_CONCURRENCY,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return cast("RunnerDeployment", deployment)


COUNCIL_BACKTEST = "council-backtest"
# One at a time, as the weekly council: its sittings are councils in the run's process,
# and the gateway's per-provider limit is process-wide (docs/decisions/0007).
COUNCIL_BACKTEST_CONCURRENCY = 1


def council_backtest_deployment() -> RunnerDeployment:
    """The council backtest as `prefect.yaml` declares it: run on request, never scheduled."""
    from prefect.types.entrypoint import EntrypointType

    from flows.council_backtest import council_backtest

    deployment = council_backtest.to_deployment(
        name=COUNCIL_BACKTEST,
        description="Sits the council at each rebalance day of a past range; judges it.",
        concurrency_limit=COUNCIL_BACKTEST_CONCURRENCY,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return cast("RunnerDeployment", deployment)


TRAINING = "training"
# Saturdays, after the week's council and the last close: training takes the cores the
# realtime server needs on a trading day. One run at a time: two would race to promote.
TRAINING_CRON = "0 6 * * 6"
TRAINING_TIMEZONE = "America/New_York"


def training_deployment() -> RunnerDeployment | None:
    """The weekly training run as `prefect.yaml` declares it; None without the `ml` extra."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.training import training

    deployment = training.to_deployment(
        name=TRAINING,
        description="Trains the forecaster and the pattern classifier; promotes only a better one.",
        schedules=[Cron(TRAINING_CRON, timezone=TRAINING_TIMEZONE)],
        concurrency_limit=1,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return cast("RunnerDeployment", deployment)


PATTERN_SCAN = "pattern-scan"
SUGGESTION = "suggestion"


def on_request_deployments() -> list[RunnerDeployment]:
    """The pattern scan and the suggestion flow: run by API jobs or the UI, never scheduled;
    as `prefect.yaml` declares them."""
    from prefect.types.entrypoint import EntrypointType

    from flows.pattern_scan import pattern_scan
    from flows.suggestion import suggestion

    made = [
        pattern_scan.to_deployment(
            name=PATTERN_SCAN,
            description="Scans stored bars for the engine's patterns and what followed them.",
            concurrency_limit=2,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
        suggestion.to_deployment(
            name=SUGGESTION,
            description="Suggestions as of a close, scored as the realtime engine scores them.",
            concurrency_limit=2,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    ]
    return cast("list[RunnerDeployment]", made)


SENTIMENT = "sentiment-analysis"
# Every quarter hour on weekdays from 09:00 to 16:45 New York: the session, and the news
# around its open and close. One run at a time: two would score the same items twice.
SENTIMENT_CRON = "*/15 9-16 * * 1-5"
SENTIMENT_TIMEZONE = "America/New_York"


def sentiment_deployment() -> RunnerDeployment:
    """The sentiment analysis as `prefect.yaml` declares it: live runs on its schedule,
    backfills by API jobs or the UI."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.sentiment import sentiment_analysis

    deployment = sentiment_analysis.to_deployment(
        name=SENTIMENT,
        description="Scores new news items and stores each symbol's sentiment.",
        schedules=[Cron(SENTIMENT_CRON, timezone=SENTIMENT_TIMEZONE)],
        concurrency_limit=1,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return cast("RunnerDeployment", deployment)


def main() -> None:
    """Serve the deployments until Ctrl-C or SIGTERM; their schedules pause on shutdown."""
    signal.signal(signal.SIGTERM, _stop_requested)  # until the runner installs its own
    with contextlib.suppress(KeyboardInterrupt):  # a requested stop, at any stage: exit 0
        _serve()
    # Stopped: what is left is the interpreter's shutdown (Prefect's log and event workers
    # flushing). A signal now would raise KeyboardInterrupt outside any handler, and the
    # process would end killed by SIGINT (-2) instead of 0; `aitrader up` once saw that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    """SIGTERM before the runner runs (imports, registering the deployments): as Ctrl-C."""
    raise KeyboardInterrupt


def _serve() -> None:
    """What `prefect.serve` does, on a runner that SIGTERM stops as Ctrl-C does
    (deployments/runner.py). Prefect's banner ("being served") came before the runner
    had registered anything; this line says what is starting, not that it is up."""
    from prefect.logging import get_logger

    from deployments.runner import CtrlCRunner

    runner = CtrlCRunner(pause_on_shutdown=True)
    served = [council_deployment(), sync_deployment(), backtest_deployment()]
    served.append(council_backtest_deployment())
    served.append(sentiment_deployment())
    served += on_request_deployments()
    if (trainer := training_deployment()) is not None:
        served.append(trainer)
    for deployment in served:
        runner.add_deployment(deployment)
    names = ", ".join(f"{d.flow_name}/{d.name}" for d in served)
    get_logger("deployments").info("starting a runner for %s; Ctrl-C or SIGTERM stops it", names)
    asyncio.run(runner.start())


if __name__ == "__main__":
    main()
