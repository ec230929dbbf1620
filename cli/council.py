"""`aitrader council ...`: sit the weekly council here, replay a week, approve, inspect.

`run` and `replay` call the flow in this process: Prefect's ephemeral mode,
or the server at `PREFECT_API_URL`. `approve` resumes a paused run through
the Prefect API, so it must reach the Prefect the run was started under (the
same `PREFECT_API_URL`, or for ephemeral runs the same `PREFECT_HOME`, whose
SQLite database both processes then share). Everything printed is read back
from the council tables, not from Prefect's result storage.

Exit codes: 0 done; 1 an error (one line on stderr); 2 a usage error;
3 the run stopped on its LLM budget (its flow run is Cancelled, no decision made).

Prefect and the flow (with litellm) are imported inside the functions that
use them: they take seconds to import, which every `aitrader` command would
pay, and Prefect's import sets up its logging unless ours is there first. So
are the queries, httpx and even asyncio (70 ms): `aitrader council --help`
must answer in 0.5 s.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

from cli.context import (
    CommandContext,
    console,
    err_console,
    open_context,
    quiet_prefect,
    run_command,
)
from cli.council_backtest import backtest_cmd
from cli.council_roster import roster_cmd
from cli.council_views import (
    day,
    decision_lines,
    describe,
    pct,
    price,
    print_cost,
    print_decisions,
    print_stages,
    print_why_no_decision,
    replay_key,
)
from cli.lazy import QuickHelpGroup
from cli.trading import execute_cmd, print_execution, print_lines
from models.enums import Timeframe
from models.errors import AITraderError, NotFoundError, describe_failure

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun, State
    from prefect.flows import Flow
    from sqlalchemy.orm import Session

    from models.council import CouncilRun

BUDGET_STOPPED = 3
CALL_COLUMNS = ("call", "stage", "model", "status", "cached", "cost")

app = typer.Typer(
    rich_markup_mode=None,  # plain help: see cli/__init__.py
    cls=QuickHelpGroup,
    help="The weekly council: run, replay, backtest, approve, show, audit, roster.",
    no_args_is_help=True,
)


class Approval(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class CouncilFlowError(AITraderError):
    """The council's flow run cannot be run, found or resumed as asked."""


DAY = ["%Y-%m-%d"]
AsOf = Annotated[
    datetime | None,
    typer.Option(
        formats=DAY,
        help="Decide at this day's close (default: the latest day with stored daily bars).",
    ),
]
ApprovalOpt = Annotated[
    Approval, typer.Option(help="manual: pause until `council approve`; auto: approve all.")
]
Budget = Annotated[float | None, typer.Option(min=0, help="LLM budget of the run, in USD.")]
Symbols = Annotated[str | None, typer.Option(help="Universe, comma-separated (default: all).")]
Models = Annotated[str | None, typer.Option(help="litellm models, comma-separated.")]
MaxPositions = Annotated[int | None, typer.Option(min=1, help="Most decisions the chair may make.")]
MaxWeight = Annotated[float | None, typer.Option(min=0, max=1, help="Largest target weight.")]


@app.command("run")
@run_command
def run_cmd(
    as_of: AsOf = None,
    approval: ApprovalOpt = Approval.MANUAL,
    budget: Budget = None,
    symbols: Symbols = None,
    models: Models = None,
    max_positions: MaxPositions = None,
    max_weight: MaxWeight = None,
) -> None:
    """Sit the council once, here, and print its decisions (exit 3: stopped on its budget)."""
    ctx = _council_context()
    _sit(ctx, _flow_params(as_of, approval, budget, symbols, models, max_positions, max_weight))


@app.command("replay")
@run_command
def replay_cmd(
    as_of: Annotated[datetime, typer.Option(formats=DAY, help="The week to replay.")],
    symbols: Symbols = None,
    models: Models = None,
    max_positions: MaxPositions = None,
    max_weight: MaxWeight = None,
) -> None:
    """Sit a past week again from the LLM response cache alone and compare its decisions
    with the original run's: no model is asked, nothing is spent, nothing is executed."""
    from db.queries import council as q

    ctx = _council_context()
    params = _flow_params(as_of, Approval.AUTO, None, symbols, models, max_positions, max_weight)
    run_id = _sit(ctx, {**params, "replay": True})
    with ctx.transaction() as session:
        run = q.get_run(session, run_id)
        before = q.previous_completed_run(session, run)
        if before is None:
            when = day(run.as_of)
            console.print(f"no earlier completed run as of {when} with these options to compare")
            return
        ours, theirs = decision_lines(session, run.id), decision_lines(session, before.id)
    was, now = {x.symbol: x for x in theirs}, {x.symbol: x for x in ours}
    changed = [s for s in sorted(was | now) if replay_key(was.get(s)) != replay_key(now.get(s))]
    if not changed:
        console.print(f"same decisions as council run {before.id}")
        return
    console.print(f"decisions differ from council run {before.id} (then -> now):")
    for symbol in changed:
        then, later = describe(was.get(symbol)), describe(now.get(symbol))
        console.print(f"  {symbol}: {then} -> {later}", markup=False, soft_wrap=True)


app.command("backtest")(backtest_cmd)
app.command("roster")(roster_cmd)


@app.command("approve")
@run_command
def approve_cmd(
    run_id: Annotated[int, typer.Argument(help="The council run waiting for approval.")],
    reject: Annotated[
        list[int] | None, typer.Option(help="A decision to reject (repeatable); others approve.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why; stored with the decisions.")] = None,
    by: Annotated[str | None, typer.Option(help="Approver's name (default: your login).")] = None,
) -> None:
    """Resume a paused council run: approve its decisions except the rejected ones."""
    ctx = _council_context()
    quiet_prefect()
    from prefect.flow_runs import resume_flow_run

    from db.queries import council as q
    from flows.weekly_council import ApprovalInput

    rejected = sorted(set(reject or []))
    with ctx.transaction() as session:
        run = q.get_run(session, run_id)
        flow_run_id, proposed = run.flow_run_id, {d.id for d in q.decision_rows(session, run_id)}
    if flow_run_id is None:
        raise NotFoundError(f"council run {run_id} has no Prefect flow run")
    if unknown := set(rejected) - proposed:
        raise NotFoundError(f"council run {run_id} has no decisions {sorted(unknown)}")
    with ctx.prefect():
        state = _flow_run_state(UUID(flow_run_id), run_id)
        if not state.is_paused():
            name = state.name
            raise CouncilFlowError(f"council run {run_id} is not paused: its flow run is {name}")
        # The server checks run_input against the JSON schema of ApprovalInput the pause stored.
        answer = ApprovalInput(reject=rejected, note=note, approver=by or _login())
        try:
            resume_flow_run(UUID(flow_run_id), run_input=answer.model_dump(mode="json"))
        except RuntimeError as exc:  # the server refused the input or the resume
            raise CouncilFlowError(f"council run {run_id} was not resumed: {exc}") from None
    console.print(
        f"council run {run_id} resumed by {answer.approver}: {len(proposed) - len(rejected)} "
        f"to approve, {len(rejected)} to reject. The flow picks the answer up within seconds; "
        f"then `aitrader council show {run_id}`.",
        markup=False,
    )


@app.command("show")
@run_command
def show_cmd(run_id: Annotated[int, typer.Argument(help="Council run id.")]) -> None:
    """A council run: when, how it ended, what it cost, each stage, and its decisions (or
    why it has none)."""
    from db.queries import council as q
    from tasks.council.stage_report import run_report

    ctx = _council_context()
    with ctx.transaction() as session:
        run = q.get_run(session, run_id)
        detail = f" ({run.detail})" if run.detail else ""
        console.print(f"council run {run.id} as of {day(run.as_of)}: {run.status}{detail}")
        console.print(f"flow run {run.flow_run_id or '-'}")
        console.print(f"data hash {run.data_hash or '-'}")
        print_cost(session, run)
        report = run_report(session, run.id)
        lines = []
        if report.decisions:
            print_stages(report)
            lines = print_decisions(session, run.id, title=f"decisions of council run {run.id}")
        else:
            print_why_no_decision(report)
    for x in lines:
        if x.approver:
            note = f": {x.note}" if x.note else ""
            console.print(f"decision {x.decision} {x.status} by {x.approver}{note}", markup=False)


@app.command("audit")
@run_command
def audit_cmd(decision_id: Annotated[int, typer.Argument(help="Council decision id.")]) -> None:
    """Why a decision was made: its pitch, the votes, the research and every LLM call."""
    from db.queries import council as q

    ctx = _council_context()
    with ctx.transaction() as session:
        chain = q.audit_chain(session, decision_id)
    d, run, p = chain["decision"], chain["run"], chain["pitch"]
    by = f" by {d['approved_by']}" if d["approved_by"] else ""
    console.print(
        f"decision {d['id']}: {d['action']} {d['symbol']} weight {pct(d['target_weight'])}, "
        f"conviction {d['conviction']:.2f}, {d['status']}{by}",
        markup=False,
    )
    console.print(f"  chair: {d['rationale']}", markup=False, highlight=False)
    console.print(f"council run {run['id']} as of {day(run['as_of'])}")
    console.print(f"data hash {chain['data_hash']}")
    if p is not None:
        console.print(
            f"pitch {p['id']} by {p['pm']}: {p['side']} {p['symbol']}, conviction "
            f"{p['conviction']:.2f}, entry {price(p['entry_price'])}, take-profit "
            f"{price(p['take_profit'])}, stop-loss {price(p['stop_loss'])}",
            markup=False,
        )
        console.print(f"  thesis: {p['thesis']}", markup=False, highlight=False)
    votes = Table("reviewer", "saw it as", "score", "critique", title="votes", show_edge=False)
    for v in chain["votes"]:
        votes.add_row(v["reviewer"], v["label"] or "-", f"{v['score']:.2f}", v["critique"])
    console.print(votes)
    analysts = sorted({r["analyst"] for r in chain["research"]})
    console.print(f"research: {len(chain['research'])} notes by {', '.join(analysts) or 'nobody'}")
    calls = Table(*CALL_COLUMNS, title="LLM calls", show_edge=False)
    for c in chain["llm_calls"]:
        cached, cost = "yes" if c["cache_hit"] else "no", f"${c['cost_usd']:.6f}"
        calls.add_row(str(c["id"]), c["stage"], c["model"], str(c["status"]), cached, cost)
    console.print(calls)
    total = sum((c["cost_usd"] for c in chain["llm_calls"]), Decimal(0))
    console.print(f"{len(chain['llm_calls'])} LLM calls behind this decision, ${total:.6f}")
    print_execution(chain["execution"])


# --- running the flow --------------------------------------------------------------


def sit_offline_week(as_of: date) -> int:
    """The demo's council: `as_of`, approval auto, the configured models (offline by default)."""
    return _sit(_council_context(), {"approval": str(Approval.AUTO), "as_of": as_of})


def _council_context() -> CommandContext:
    """Settings, the database at its schema head; Prefect is not loaded yet (1.5 s), so a
    refusal that needs only the database answers first."""
    ctx = open_context()
    ctx.require_schema()
    return ctx


def _flow_params(
    as_of: datetime | None,
    approval: Approval,
    budget: float | None,
    symbols: str | None,
    models: str | None,
    max_positions: int | None,
    max_weight: float | None,
) -> dict[str, Any]:
    """The flow's keyword arguments; what the user left out keeps the flow's default."""
    given = {
        "as_of": as_of.date() if as_of else None,
        "universe": _split(symbols, upper=True),
        "models": _split(models),
        "budget_usd": budget,
        "max_positions": max_positions,
        "max_weight": max_weight,
    }
    return {"approval": str(approval), **{k: v for k, v in given.items() if v is not None}}


def _sit(ctx: CommandContext, params: dict[str, Any]) -> int:
    """Run the flow to its end and print the outcome; the council run's id."""
    import asyncio

    from db.queries.bar_coverage import bar_coverage
    from tasks.council.week import council_day

    symbols = params.get("universe")
    with ctx.transaction() as session:  # refused here, before Prefect starts
        if symbols:
            stored = {c.symbol for c in bar_coverage(session, symbols, Timeframe.D1)}
            if missing := [s for s in symbols if s not in stored]:
                raise NotFoundError(
                    f"no daily bars for {', '.join(missing)}: see `aitrader data list`"
                )
        chosen = council_day(session, params.get("as_of"), symbols)
    params = {**params, "as_of": chosen.day}
    console.print(f"council {chosen.describe()}")
    quiet_prefect()
    manual = params["approval"] == Approval.MANUAL and not params.get("replay")
    announce = _announcer(ctx) if manual else None
    with ctx.prefect():
        state, flow_run_id = asyncio.run(_run_flow(params, announce))
    with ctx.transaction() as session:
        run = _run_of(session, flow_run_id)  # None if the flow failed before it sat
        if state.is_cancelled():
            where = f"council run {run.id}" if run else "the council"
            err_console.print(f"{where} cancelled: {state.message}", markup=False)
            raise typer.Exit(code=BUDGET_STOPPED)
        if not state.is_completed() or run is None:
            failure = state.result(raise_on_failure=False)
            if isinstance(failure, AITraderError):
                raise failure
            # The run's own record has the cause in words (the first real error, never
            # its group); a flow that failed before its run existed has only its exception.
            if run is not None and run.detail:
                raise CouncilFlowError(f"council run {run.id} {run.status}: {run.detail}")
            cause = (
                describe_failure(failure)
                if isinstance(failure, BaseException)
                else state.message or state.name
            )
            raise CouncilFlowError(f"the council's flow run ended {state.name}: {cause}")
        console.print(f"council run {run.id} as of {day(run.as_of)}: {run.status}")
        title = f"decisions of council run {run.id}"
        if params.get("replay"):
            title += " (replayed: proposals only, never executed)"
            console.print(f"{run.detail}", markup=False)
        print_decisions(session, run.id, title=title)
        summary = state.result(raise_on_failure=False)
        if isinstance(summary, dict) and summary.get("orders"):
            print_lines(summary["orders"])
        console.print(f"data hash {run.data_hash}")
        print_cost(session, run)
        return run.id


def _run_of(session: Session, flow_run_id: UUID | None) -> CouncilRun | None:
    from db.queries import council as q

    if flow_run_id is None:
        return None
    try:
        return q.run_of_flow(session, flow_run_id)
    except NotFoundError:
        return None


async def _run_flow(
    params: dict[str, Any], announce: Callable[[UUID], None] | None
) -> tuple[State[Any], UUID | None]:
    """Call the flow here; while it runs, tell the user once if it pauses for approval."""
    import asyncio

    from flows.weekly_council import weekly_council

    seen: list[UUID] = []

    def note_flow_run_id(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
        seen.append(flow_run.id)

    flow = weekly_council.with_options(on_running=[note_flow_run_id])
    watcher = asyncio.create_task(_watch_for_pause(seen, announce)) if announce else None
    try:
        state: State[Any] = await flow(**params, return_state=True)
    finally:
        if watcher is not None:
            watcher.cancel()
    return state, seen[0] if seen else None


async def _watch_for_pause(seen: list[UUID], announce: Callable[[UUID], None]) -> None:
    import asyncio

    from prefect import get_client

    async with get_client() as client:
        while True:
            await asyncio.sleep(1)
            state = (await client.read_flow_run(seen[0])).state if seen else None
            if state is not None and state.is_paused():
                announce(seen[0])
                return


def _announcer(ctx: CommandContext) -> Callable[[UUID], None]:
    def announce(flow_run_id: UUID) -> None:
        from db.queries import council as q

        with ctx.transaction() as session:
            run = q.run_of_flow(session, flow_run_id)
            print_decisions(session, run.id, title=f"proposed by council run {run.id}")
        console.print(
            f"council run {run.id} is waiting for approval. From another shell, with the same "
            f"DATABASE_URL and Prefect ({_prefect_location()}):\n"
            f"  aitrader council approve {run.id} [--reject DECISION_ID ...] [--note TEXT]\n"
            f"or Resume flow run {flow_run_id} in the Prefect UI. Ctrl-C stops waiting.",
            markup=False,
            highlight=False,
        )

    return announce


def _flow_run_state(flow_run_id: UUID, run_id: int) -> State[Any]:
    import httpx
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
    except ObjectNotFound:
        raise NotFoundError(
            f"flow run {flow_run_id} of council run {run_id} is not known to "
            f"{_prefect_location()}: approve with the PREFECT_API_URL (or PREFECT_HOME) "
            "the run was started with"
        ) from None
    except httpx.TransportError as exc:
        raise CouncilFlowError(f"cannot reach {_prefect_location()}: {exc}") from None
    if state is None:
        raise CouncilFlowError(f"flow run {flow_run_id} of council run {run_id} has no state")
    return state


def _prefect_location() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or "the ephemeral Prefect under PREFECT_HOME"


def _split(value: str | None, *, upper: bool = False) -> list[str] | None:
    items = [s.strip() for s in (value or "").split(",") if s.strip()]
    return [s.upper() if upper else s for s in items] or None


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment (some containers)
        return "cli"


app.command("execute")(execute_cmd)
