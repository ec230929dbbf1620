"""`aitrader backtest run`: the backtest flow, here, with a progress bar and a metrics table.

Parameters are `--param name=value`; a value list (`fast=5,10,20`) or an
inclusive range (`fast=2:100`, `slow=10:200:10`) sweeps it, and every
combination is scored; the best `--top` sets are printed after the winner.
`--wf-train/--wf-test` make it a walk-forward.

The printout agrees with itself: trade statistics say they count closed
trades, the open ones are counted and valued beside them, the footer's trade
count is the two added up, and the P&L line adds closed and open P&L to the
return. No "inf" or "nan": a profit factor without losses says so in words.

Heavy imports (rich.progress too) are inside the functions: `aitrader backtest --help`
must answer in 0.5 s.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cli.context import console, open_context, run_command
from cli.flow_progress import run_with_progress
from cli.lazy import QuickHelpGroup
from models.enums import Direction, SizingMode, Timeframe
from models.errors import InvalidInputError

if TYPE_CHECKING:
    from cli.context import CommandContext

app = typer.Typer(
    rich_markup_mode=None,  # plain help: see cli/__init__.py
    cls=QuickHelpGroup,
    help="Backtests: single runs, parameter sweeps, walk-forward.",
)

DAY = ["%Y-%m-%d"]
PROGRESS_LOGGER = "flows.backtest.progress"


@app.command("run")
@run_command
def run_cmd(
    strategy: Annotated[
        str,
        typer.Option(
            help="sma_cross, rsi_reversion, macd, bollinger_breakout, or package.module:function."
        ),
    ],
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols.")],
    start: Annotated[datetime, typer.Option(formats=DAY, help="First day.")],
    end: Annotated[datetime, typer.Option(formats=DAY, help="Last day (its close included).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="name=value, name=a,b,c or name=lo:hi[:step]."),
    ] = None,
    init_cash: Annotated[float, typer.Option(min=1)] = 100_000.0,
    fee_bps: Annotated[float, typer.Option(min=0, help="Commission, bps of notional.")] = 0.0,
    fee_fixed: Annotated[float, typer.Option(min=0, help="Commission per fill.")] = 0.0,
    slippage_bps: Annotated[float, typer.Option(min=0)] = 0.0,
    size_mode: Annotated[SizingMode, typer.Option()] = SizingMode.EQUITY_FRACTION,
    size: Annotated[float, typer.Option(min=0, help="Shares, cash or equity fraction.")] = 1.0,
    whole_shares: Annotated[bool, typer.Option(help="Round sizes down to whole shares.")] = False,
    direction: Annotated[Direction, typer.Option()] = Direction.LONG,
    shared_cash: Annotated[bool, typer.Option(help="One cash pool for all symbols.")] = False,
    stop_loss: Annotated[float | None, typer.Option(help="Fraction, e.g. 0.05.")] = None,
    take_profit: Annotated[float | None, typer.Option(help="Fraction, e.g. 0.1.")] = None,
    trailing_stop: Annotated[float | None, typer.Option(help="Fraction, e.g. 0.05.")] = None,
    optimise: Annotated[str, typer.Option(help="Metric a sweep maximises.")] = "sharpe",
    wf_train: Annotated[int | None, typer.Option(help="Walk-forward: in-sample bars.")] = None,
    wf_test: Annotated[int | None, typer.Option(help="Walk-forward: out-of-sample bars.")] = None,
    wf_window: Annotated[str, typer.Option(help="rolling or expanding.")] = "rolling",
    top: Annotated[int, typer.Option(min=0, max=20, help="Best sets a sweep prints.")] = 10,
) -> None:
    """Backtest a strategy and print its metrics beside buy-and-hold; writes an equity PNG."""
    from models.backtest import BacktestConfig, Costs, Sizing, Stops, WalkForward

    ctx = open_context()
    ctx.require_schema()
    config = BacktestConfig(
        init_cash=init_cash,
        costs=Costs(fee_bps=fee_bps, fee_fixed=fee_fixed, slippage_bps=slippage_bps),
        sizing=Sizing(mode=size_mode, value=size, fractional=not whole_shares),
        stops=Stops(stop_loss=stop_loss, take_profit=take_profit, trailing_stop=trailing_stop),
        direction=direction,
        shared_cash=shared_cash,
    )
    walk_forward = None
    if wf_train or wf_test:
        if not (wf_train and wf_test):
            raise InvalidInputError("--wf-train", "a walk-forward needs --wf-train and --wf-test")
        walk_forward = WalkForward.model_validate(
            {"train": wf_train, "test": wf_test, "window": wf_window}
        )
    request = {
        "strategy": strategy,
        "symbols": [s.strip().upper() for s in symbols.split(",") if s.strip()],
        "start": start.date(),
        "end": end.date(),
        "params": parse_params(param or []),
        "config": config,
        "walk_forward": walk_forward,
        "optimise": optimise,
    }
    refuse_before_running(ctx, request)
    with ctx.prefect():
        summary = _run(request)
    _print_summary(summary, init_cash)
    _print_top(summary, top)


def refuse_before_running(ctx: CommandContext, request: dict[str, Any]) -> None:
    """What the flow would refuse, refused here before Prefect starts (8-15 s): the request's
    shape (an empty date range), an unknown built-in strategy, symbols with no daily bars in
    the range. The flow checks again; these are only the cheap ones."""
    from pydantic import ValidationError

    from db.queries.bar_coverage import bar_coverage
    from models.backtest import BacktestRequest, require_strategy_name

    try:
        BacktestRequest.model_validate(request)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "backtest"
        raise InvalidInputError(where, error["msg"].removeprefix("Value error, ")) from None
    require_strategy_name(request["strategy"])
    start, end, symbols = request["start"], request["end"], request["symbols"]
    with ctx.sessions() as session:
        covered = {
            c.symbol
            for c in bar_coverage(session, symbols, Timeframe.D1)
            if c.first.date() <= end and c.last.date() >= start
        }
    if missing := [s for s in symbols if s not in covered]:
        raise InvalidInputError(
            "symbols", f"no daily bars from {start} to {end} for {', '.join(missing)}"
        )


def parse_params(items: list[str]) -> dict[str, float | list[float]]:
    """`fast=10`, `fast=5,10,20`, `fast=2:100` (inclusive), `slow=10:200:10`."""
    out: dict[str, float | list[float]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise InvalidInputError("--param", f"{item!r}: expected name=value")
        try:
            if ":" in text:
                parts = [float(p) for p in text.split(":")]
                if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0):
                    raise ValueError
                lo, hi = parts[0], parts[1]
                step = parts[2] if len(parts) == 3 else 1.0
                count = int((hi - lo) / step + 1e-9) + 1
                if count < 1 or count > 1_000_000:
                    raise ValueError
                out[name] = [lo + i * step for i in range(count)]
            elif "," in text:
                out[name] = [float(p) for p in text.split(",")]
            else:
                out[name] = float(text)
        except ValueError:
            raise InvalidInputError(
                "--param", f"{item!r}: not a number, list or lo:hi[:step]"
            ) from None
    return out


def _run(params: dict[str, Any]) -> dict[str, Any]:
    from flows.backtest import backtest

    return run_with_progress(
        lambda: backtest(**params, return_state=True),
        PROGRESS_LOGGER,
        what="backtest",
        unit="parameter sets",
    )


# Row labels that say what a number counts; the metric's own name leads, for --optimise.
LABELS = {
    "win_rate": "win_rate (closed trades)",
    "profit_factor": "profit_factor (closed trades)",
    "expectancy": "expectancy (closed trades)",
    "trades": "trades (closed)",
    "open_trades": "open_trades (at the end)",
    "open_pnl": "open_pnl (marked at the last close)",
}


def _print_summary(summary: dict[str, Any], init_cash: float) -> None:
    from tasks.backtest.metrics import metric_text  # numpy: loaded by the flow already

    best = summary["best_params"]
    metrics, bench = summary["metrics"], summary["benchmark"]
    title = f"backtest {summary['backtest_id']}: " + " ".join(f"{k}={v:g}" for k, v in best.items())
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("strategy", justify="right")
    table.add_column("buy and hold", justify="right")
    for name, value in metrics.items():
        table.add_row(
            LABELS.get(name, name), metric_text(name, value), metric_text(name, bench.get(name))
        )
    console.print(table)
    console.print(pnl_line(metrics, init_cash), highlight=False, soft_wrap=True)
    console.print(
        f"{trades_line(metrics)}   equity plot: {summary['plot']}",
        highlight=False,
        soft_wrap=True,
    )


def trades_line(metrics: dict[str, Any]) -> str:
    """`21 trades (19 closed, 2 open)`: the table's closed and open counts, added up."""
    closed, still_open = int(metrics["trades"]), int(metrics["open_trades"])
    return f"{closed + still_open:,} trades ({closed:,} closed, {still_open:,} open)"


def pnl_line(metrics: dict[str, Any], init_cash: float) -> str:
    """Where the return came from: closed trades' P&L plus the open ones' marked P&L."""
    closed_trades = int(metrics["trades"])
    closed = float(metrics["expectancy"]) * closed_trades if closed_trades else 0.0
    still_open = float(metrics["open_pnl"])
    total = float(metrics["final_equity"]) - init_cash
    return (
        f"P&L {total:+,.2f} ({float(metrics['total_return']):+.2%}) = "
        f"closed trades {closed:+,.2f} + open trades {still_open:+,.2f} (marked)"
    )


def _print_top(summary: dict[str, Any], n: int) -> None:
    """The sweep's best `n` sets by the metric it maximised, best first."""
    from tasks.backtest.metrics import metric_text

    rows = summary.get("top") or []
    if n == 0 or not rows:
        return
    metric = summary["optimise"]
    shown = [metric, *(m for m in ("total_return", "max_drawdown", "trades") if m != metric)]
    table = Table(title=f"top {min(n, len(rows))} of {summary['sets']:,} sets by {metric}")
    table.add_column("#", justify="right")
    names = list(rows[0]["params"])
    for name in names:
        table.add_column(name, justify="right")
    for name in shown:
        table.add_column(LABELS.get(name, name), justify="right")
    for rank, row in enumerate(rows[:n], start=1):
        params = [f"{row['params'][k]:g}" for k in names]
        values = [metric_text(m, row["metrics"].get(m)) for m in shown]
        table.add_row(str(rank), *params, *values)
    console.print(table)
