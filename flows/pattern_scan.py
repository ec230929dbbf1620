"""`pattern_scan`: the realtime engine's patterns over stored bars, and the classifier's view.

Replays the daily bars of `symbols` from `start` to `end` through a fresh pattern
engine (tasks/pattern_scan.py) and, when a pattern classifier is active, scores
each signal's window with it. Reports per pattern and per class: how many fired,
and the average return over `horizon` bars after them, signed by their side,
with the hit rate. Read-only: nothing is written but the job's result and the
flow's artifacts (the realtime engine's signals table holds live signals only).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.bars import Bars, load_bars
from flows.job_hooks import JOB_HOOKS, record_result
from flows.model_runners import active_models
from models.errors import InvalidInputError
from realtime.patterns.config import PatternConfig
from tasks.pattern_scan import Scan, scan_bars

LATEST = 50  # signals listed in the result, newest first


@task(name="scan-bars", cache_policy=NO_CACHE)
def scan(
    bars: Bars, config: PatternConfig, horizon: int, classify: bool
) -> tuple[Scan, int | None]:
    classifier = (
        active_models(("pattern_classifier",)).get("pattern_classifier") if classify else None
    )
    found = scan_bars(
        bars.frame,
        config,
        horizon=horizon,
        classify=classifier.run if classifier else None,
        window=classifier.window if classifier else 0,
    )
    return found, classifier.version if classifier else None


@flow(name="pattern-scan", retries=0, **JOB_HOOKS)
def pattern_scan(
    symbols: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    horizon: int = 5,
    pattern_params: dict[str, Any] | None = None,
    classify: bool = True,
    job_id: int | None = None,
) -> dict[str, Any]:
    """Which patterns fired on the stored bars, what the classifier said, what followed."""
    try:
        config = PatternConfig(**(pattern_params or {}))
    except ValueError as error:
        raise InvalidInputError("pattern_params", str(error).splitlines()[0]) from error
    bars = load_bars(symbols, start, end)
    found, classifier = scan(bars, config, horizon, classify)
    kinds, classes = found.by_kind(), found.by_class()
    create_table_artifact(
        table=kinds, key="pattern-scan-kinds", description=f"{len(found.signals)} signals by kind"
    )
    if classes:
        create_table_artifact(
            table=classes,
            key="pattern-scan-classes",
            description=f"signals by pattern_classifier v{classifier}'s top class",
        )
    get_run_logger().info(
        "pattern scan: %d signals on %d bars of %d symbols",
        len(found.signals),
        found.bars,
        found.symbols,
    )
    newest = sorted(found.signals, key=lambda f: f.ts, reverse=True)[:LATEST]
    summary = {
        "symbols": found.symbols,
        "bars": found.bars,
        "from": bars.start.isoformat(),
        "to": bars.end.isoformat(),
        "horizon": horizon,
        "signals": len(found.signals),
        "classifier_version": classifier,
        "by_kind": kinds,
        "by_class": classes,
        "latest": [
            {
                "symbol": f.symbol,
                "kind": f.kind,
                "side": f.side,
                "ts": f.ts.isoformat(),
                "score": f.score if math.isfinite(f.score) else None,
                "probs": list(f.probs) if f.probs else None,
            }
            for f in newest
        ],
    }
    record_result(job_id, "scanned", summary)
    return summary
