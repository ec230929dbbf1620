"""Run a flow here with a progress bar on the terminal, and end in one line if it fails.

A flow reports progress by logging to its progress logger with `done` and
`total` extras (`flows.backtest.progress`, `flows.sentiment.progress`); while
the flow runs, those records move a rich progress bar instead of reaching the
log. A run that did not complete raises its own `AITraderError` if that is what
stopped it, else `FlowFailedError` naming the state and the cause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cli.context import console
from models.errors import AITraderError, describe_failure


class FlowFailedError(AITraderError):
    """A flow run the command started did not complete."""


def run_with_progress(
    start: Callable[[], Any], logger_name: str, *, what: str, unit: str
) -> dict[str, Any]:
    """`start()` (a flow called with `return_state=True`) under a progress bar counting
    `unit`; the flow's result. Rich is imported here: `--help` stays quick."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    log = logging.getLogger(logger_name)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task_id = bar.add_task("starting", total=None)
        handler = _ProgressHandler(bar, task_id, unit)
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        log.propagate = False
        try:
            state = start()
        finally:
            log.removeHandler(handler)
            log.propagate = True
    if not state.is_completed():
        failure = state.result(raise_on_failure=False)
        if isinstance(failure, AITraderError):
            raise failure
        cause = describe_failure(failure) if isinstance(failure, BaseException) else state.message
        raise FlowFailedError(f"the {what} flow run ended {state.name}: {cause}")
    result: dict[str, Any] = state.result()
    return result


class _ProgressHandler(logging.Handler):
    def __init__(self, bar: Any, task_id: Any, unit: str) -> None:
        super().__init__(logging.DEBUG)
        self._bar = bar
        self._task = task_id
        self._unit = unit

    def emit(self, record: logging.LogRecord) -> None:
        done, total = getattr(record, "done", None), getattr(record, "total", None)
        unit = getattr(record, "unit", None) or self._unit
        if isinstance(done, int) and isinstance(total, int):
            self._bar.update(self._task, completed=done, total=total, description=str(unit))
