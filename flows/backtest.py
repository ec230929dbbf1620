"""The `backtest` flow: one run, a parameter sweep, or a walk-forward, stored and drawn.

load bars (point in time, as of `end`) -> score the grid in chunks, each a
Prefect task (threads here, or a Dask cluster when `BACKTEST_DASK_ADDRESS`
is set: how a sweep outgrows one machine) -> re-run the winner with its
trades and buy-and-hold beside it -> store the run, every set's metrics and
the winner's trades -> artifacts: the metrics table, the sweep's top sets and
the equity/drawdown plot. A walk-forward maps its windows instead of chunks,
optimising in sample and evaluating out of sample in each.

Progress is logged as DEBUG `backtest.progress` records (done, total, unit) on
`flows.backtest.progress`, which the CLI turns into a progress bar: the first
says 0 of the total before any work starts, then one per chunk or window done.
A sweep's summary carries its `TOP_ROWS` best sets, which the CLI prints.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from typing import Any, cast
from uuid import UUID

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from db.engine import make_engine, make_read_session_factory, make_session_factory, unit_of_work
from db.queries.backtests import (
    add_param_results,
    add_trades,
    complete_backtest,
    create_backtest,
    fail_backtest,
    json_metrics,
)
from db.queries.bars import bars_frame
from flows.job_hooks import JOB_HOOKS
from models.backtest import BacktestConfig, BacktestRequest, Metrics, WalkForward
from models.errors import InvalidInputError
from services.settings import Settings, get_settings
from tasks.backtest.engine import buy_and_hold
from tasks.backtest.metrics import metric_text
from tasks.backtest.panel import PricePanel
from tasks.backtest.plot import equity_png, write_png
from tasks.backtest.strategies import get_strategy
from tasks.backtest.sweep import (
    STOP_PARAMS,
    best_row,
    chunk_size,
    chunked,
    parameter_sets,
    run_grid,
    score_grid,
    top_rows,
)
from tasks.backtest.walk_forward import (
    WindowReport,
    evaluate_window,
    stitch,
    stitched_trades_frame,
    windows,
)

progress_log = logging.getLogger("flows.backtest.progress")
TOP_ROWS = 20


@task(name="load-bars", cache_policy=NO_CACHE)
def load_panel(symbols: list[str], start: date, end: date) -> PricePanel:
    """The symbols' daily bars from `start` through `end`, as known at `end`'s close."""
    engine = make_engine(get_settings().database_url)
    try:
        with make_read_session_factory(engine)() as session:  # a long read: no write lock
            frame = bars_frame(session, symbols, start, end)
    finally:
        engine.dispose()
    missing = sorted(set(symbols) - set(frame["symbol"].unique()))
    if missing:
        raise InvalidInputError(
            "symbols", f"no daily bars from {start} to {end} for {', '.join(missing)}"
        )
    return PricePanel.from_frame(frame, symbols)


@task(name="score-chunk", cache_policy=NO_CACHE)
def score_chunk(
    panel: PricePanel, strategy: str, grid: list[dict[str, float]], config: BacktestConfig
) -> pd.DataFrame:
    """Metrics of one chunk of the grid (no trades kept)."""
    return score_grid(panel, get_strategy(strategy).fn, grid, config)


@task(name="walk-forward-window", cache_policy=NO_CACHE)
def window_task(
    panel: PricePanel,
    strategy: str,
    grid: list[dict[str, float]],
    config: BacktestConfig,
    spec: WalkForward,
    index: int,
    metric: str,
) -> WindowReport:
    window = windows(len(panel.dates), spec)[index]
    return evaluate_window(panel, get_strategy(strategy).fn, grid, config, window, metric)


@flow(name="backtest", retries=0, **JOB_HOOKS)
def backtest(
    strategy: str,
    symbols: list[str],
    start: date,
    end: date,
    params: dict[str, float | list[float]] | None = None,
    config: BacktestConfig | None = None,
    walk_forward: WalkForward | None = None,
    optimise: str = "sharpe",
    job_id: int | None = None,
) -> dict[str, Any]:
    """Backtest `strategy` on `symbols` from `start` to `end`; lists in `params` sweep.

    Returns the stored run's id, the chosen parameters, its metrics and
    buy-and-hold's, and where the plot was written.
    """
    request = BacktestRequest(
        strategy=strategy,
        params=params or {},
        symbols=symbols,
        start=start,
        end=end,
        config=config or BacktestConfig(),
        walk_forward=walk_forward,
        optimise=optimise,
    )
    settings = get_settings()
    run_logger = get_run_logger()
    spec = get_strategy(request.strategy)
    grid = parameter_sets(spec.name, request.params)
    kind = "walk_forward" if walk_forward else ("sweep" if len(grid) > 1 else "single")
    backtest_id = _open_run(request, kind, job_id)
    try:
        panel = load_panel(request.symbols, request.start, request.end)
        if walk_forward is None:
            summary = _sweep(settings, request, panel, grid, backtest_id)
        else:
            summary = _walk_forward(settings, request, panel, grid, walk_forward, backtest_id)
    except BaseException as exc:
        _fail_run(backtest_id, f"{type(exc).__name__}: {exc}")
        raise
    run_logger.info(
        "backtest %s (%s, %d sets): %s", backtest_id, kind, len(grid), summary["metrics"]
    )
    return summary


# --- a single run or a sweep -------------------------------------------------------------


def _sweep(
    settings: Settings,
    request: BacktestRequest,
    panel: PricePanel,
    grid: list[dict[str, float]],
    backtest_id: int,
) -> dict[str, Any]:
    config = request.config
    size = chunk_size(len(grid), settings.backtest_chunk_size, settings.backtest_workers)
    chunks = chunked(grid, size)
    tables = _map_chunks(settings, panel, request.strategy, chunks, config)
    table = pd.concat(tables, ignore_index=True)
    winner = grid[best_row(table, request.optimise)]
    fn = get_strategy(request.strategy).fn
    result = run_grid(panel, fn, [winner], config)
    bench = buy_and_hold(panel, config)
    return _store(
        request,
        backtest_id,
        panel.dates,
        winner,
        result.metrics(),
        bench.metrics(),
        result.set_equity()[:, 0],
        bench.set_equity()[:, 0],
        result.trades_frame(),
        segments=[("full", panel.dates[0], panel.dates[-1], table)],
        top=table if len(grid) > 1 else None,
    )


def _map_chunks(
    settings: Settings,
    panel: PricePanel,
    strategy: str,
    chunks: list[list[dict[str, float]]],
    config: BacktestConfig,
) -> list[pd.DataFrame]:
    """Score every chunk as a task; progress is reported before the first and as each
    chunk finishes."""
    total = sum(len(c) for c in chunks)
    _progress(0, total, "parameter sets")
    if len(chunks) == 1:
        table = score_chunk(panel, strategy, chunks[0], config)
        _progress(total, total, "parameter sets")
        return [table]
    progress = cast(
        UUID, create_progress_artifact(progress=0.0, description="Parameter sets scored")
    )  # sync here: the flow is sync
    tables: list[pd.DataFrame] = []
    with _chunk_runner(settings) as runner:
        futures = [
            runner.submit(
                score_chunk,
                parameters={"panel": panel, "strategy": strategy, "grid": c, "config": config},
            )
            for c in chunks
        ]
        done = 0
        for future, chunk in zip(futures, chunks, strict=True):
            tables.append(future.result())
            done += len(chunk)
            _progress(done, total, "parameter sets")
            update_progress_artifact(artifact_id=progress, progress=100.0 * done / total)
    return tables


def _progress(done: int, total: int, unit: str) -> None:
    progress_log.debug("backtest.progress", extra={"done": done, "total": total, "unit": unit})


@contextmanager
def _chunk_runner(settings: Settings) -> Iterator[TaskRunner[Any]]:
    """Threads here (numba and numpy release the GIL), or the configured Dask cluster."""
    runner: TaskRunner[Any]
    if settings.backtest_dask_address:
        from prefect_dask.task_runners import DaskTaskRunner  # optional: only a Dask setup needs it

        runner = DaskTaskRunner(address=settings.backtest_dask_address)
    else:
        runner = ThreadPoolTaskRunner(max_workers=settings.backtest_workers)
    with runner:
        yield runner


# --- walk-forward ------------------------------------------------------------------------


def _walk_forward(
    settings: Settings,
    request: BacktestRequest,
    panel: PricePanel,
    grid: list[dict[str, float]],
    spec: WalkForward,
    backtest_id: int,
) -> dict[str, Any]:
    config = request.config
    plan = windows(len(panel.dates), spec)
    reports: list[WindowReport] = []
    _progress(0, len(plan), "walk-forward windows")
    with _chunk_runner(settings) as runner:
        futures = [
            runner.submit(
                window_task,
                parameters={
                    "panel": panel,
                    "strategy": request.strategy,
                    "grid": grid,
                    "config": config,
                    "spec": spec,
                    "index": w.index,
                    "metric": request.optimise,
                },
            )
            for w in plan
        ]
        for done, future in enumerate(futures, start=1):
            reports.append(future.result())
            _progress(done, len(plan), "walk-forward windows")
    equity, metrics = stitch(reports, config)
    first = plan[0].test[0]
    oos_panel = panel.between(first, len(panel.dates))
    bench = buy_and_hold(oos_panel, config)
    segments: list[tuple[str, pd.Timestamp, pd.Timestamp, pd.DataFrame]] = []
    for r in reports:
        (a, b), (c, d) = r.window.train, r.window.test
        segments.append((f"wf{r.window.index}:in", panel.dates[a], panel.dates[b - 1], r.in_sample))
        out = pd.concat(
            [pd.DataFrame([r.best]), r.out_of_sample.metrics_table()], axis=1, ignore_index=False
        )
        segments.append((f"wf{r.window.index}:out", panel.dates[c], panel.dates[d - 1], out))
    _window_artifact(reports, panel.dates, request.optimise)
    return _store(
        request,
        backtest_id,
        oos_panel.dates,
        {"windows": float(len(reports))},
        metrics,
        bench.metrics(),
        equity,
        bench.set_equity()[:, 0],
        stitched_trades_frame(reports, config),
        segments=segments,
        top=None,
    )


def _window_artifact(reports: Sequence[WindowReport], dates: pd.DatetimeIndex, metric: str) -> None:
    rows = []
    for r in reports:
        best_in = r.in_sample[metric].max()
        out = r.out_of_sample.metrics()
        rows.append(
            {
                "window": r.window.index,
                "train": _span(dates, r.window.train),
                "test": _span(dates, r.window.test),
                "best": ", ".join(f"{k}={v:g}" for k, v in r.best.items()),
                f"in-sample {metric}": metric_text(metric, best_in),
                f"out-of-sample {metric}": metric_text(metric, getattr(out, metric)),
                "out-of-sample return": metric_text("total_return", out.total_return),
            }
        )
    create_table_artifact(table=rows, key="backtest-walk-forward", description="Walk-forward")


# --- storing and drawing -----------------------------------------------------------------


def _store(
    request: BacktestRequest,
    backtest_id: int,
    dates: pd.DatetimeIndex,
    best: Mapping[str, float],
    metrics: Metrics,
    benchmark: Metrics,
    equity: np.ndarray,
    bench_equity: np.ndarray,
    trades: pd.DataFrame,
    *,
    segments: Sequence[tuple[str, pd.Timestamp, pd.Timestamp, pd.DataFrame]],
    top: pd.DataFrame | None,
) -> dict[str, Any]:
    """Store the run and draw it; the summary's `trades` is every stored trade, which is
    the metrics' `trades` (closed) plus `open_trades`."""
    settings = get_settings()
    curve = [
        [ts.isoformat(), float(e), float(b)]
        for ts, e, b in zip(dates, equity, bench_equity, strict=True)
    ]
    param_names = sorted({*request.params, *STOP_PARAMS} & {*next(iter(segments))[3].columns})
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            for segment, first, last, table in segments:
                names = [c for c in table.columns if c in param_names or c in best]
                add_param_results(
                    session,
                    backtest_id,
                    segment,
                    first.to_pydatetime(),
                    last.to_pydatetime(),
                    table,
                    names,
                )
            add_trades(session, backtest_id, trades)
            complete_backtest(
                session,
                backtest_id,
                metrics=metrics.model_dump(),
                benchmark=benchmark.model_dump(),
                best_params=dict(best),
                equity=curve,
                trades_count=int((trades["exit_reason"] != "open").sum()),
            )
    finally:
        engine.dispose()
    title = f"{request.strategy} {_params_text(best)} on {len(request.symbols)} symbol(s)"
    png = equity_png(dates, equity, bench_equity, title=title)
    plot_path = write_png(settings.backtest_plot_dir, f"backtest-{backtest_id}", png)
    _artifacts(backtest_id, metrics, benchmark, top, request.optimise, png)
    return {
        "backtest_id": backtest_id,
        "best_params": dict(best),
        "metrics": json_metrics(metrics.model_dump()),
        "benchmark": json_metrics(benchmark.model_dump()),
        "trades": len(trades),
        "plot": str(plot_path),
        "optimise": request.optimise,
        "sets": len(top) if top is not None else 1,
        "top": _top_sets(top, request.optimise) if top is not None else [],
    }


def _top_sets(table: pd.DataFrame, metric: str) -> list[dict[str, Any]]:
    """The sweep's best `TOP_ROWS` sets, best first: {"params": {...}, "metrics": {...}}."""
    metric_names = [c for c in table.columns if c in Metrics.model_fields]
    param_names = [c for c in table.columns if c not in Metrics.model_fields]
    return [
        {
            "params": {str(p): float(row[p]) for p in param_names},
            "metrics": json_metrics({str(m): row[m] for m in metric_names}),
        }
        for row in top_rows(table, metric, TOP_ROWS).to_dict("records")
    ]


def _artifacts(
    backtest_id: int,
    metrics: Metrics,
    benchmark: Metrics,
    top: pd.DataFrame | None,
    metric: str,
    png: bytes,
) -> None:
    rows = [
        {
            "metric": name,
            "strategy": metric_text(name, value),
            "buy and hold": metric_text(name, getattr(benchmark, name)),
        }
        for name, value in metrics.model_dump().items()
    ]
    create_table_artifact(
        table=rows, key="backtest-metrics", description=f"Backtest {backtest_id}: metrics"
    )
    if top is not None:
        best = top_rows(top, metric, TOP_ROWS)
        create_table_artifact(
            table=[{str(k): _fmt(k, v) for k, v in r.items()} for r in best.to_dict("records")],
            key="backtest-sweep",
            description=f"Backtest {backtest_id}: top {len(best)} of {len(top)} sets by {metric}",
        )
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    create_image_artifact(
        image_url=data_url, key="backtest-equity", description=f"Backtest {backtest_id}"
    )
    create_markdown_artifact(
        markdown=f"![equity and drawdown]({data_url})",
        key="backtest-equity-plot",
        description=f"Backtest {backtest_id}: equity and drawdown",
    )


# --- the run's row -----------------------------------------------------------------------


def _open_run(request: BacktestRequest, kind: str, job_id: int | None) -> int:
    engine = make_engine(get_settings().database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            row = create_backtest(
                session,
                kind=kind,
                strategy=request.strategy,
                symbols=request.symbols,
                start=datetime.combine(request.start, time(), tzinfo=UTC),
                end=datetime.combine(request.end, time(), tzinfo=UTC),
                params=request.params,
                config={
                    **request.config.model_dump(mode="json"),
                    "optimise": request.optimise,
                    "walk_forward": (
                        request.walk_forward.model_dump() if request.walk_forward else None
                    ),
                },
                job_id=job_id,
            )
            return row.id
    finally:
        engine.dispose()


def _fail_run(backtest_id: int, error: str) -> None:
    engine = make_engine(get_settings().database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            fail_backtest(session, backtest_id, error)
    finally:
        engine.dispose()


def _span(dates: pd.DatetimeIndex, bars: tuple[int, int]) -> str:
    return f"{dates[bars[0]].date()} .. {dates[bars[1] - 1].date()}"


def _params_text(params: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in params.items())


def _fmt(name: Any, value: Any) -> str:
    """A sweep table cell: parameters as given (`10`), metrics as `metric_text` says them."""
    if isinstance(value, float | np.floating) and str(name) not in Metrics.model_fields:
        return f"{value:g}"
    return metric_text(str(name), value)
