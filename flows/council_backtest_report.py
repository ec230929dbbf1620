"""What a council backtest leaves behind: the books executed and compared, the pitches and
reviewers scored, the bias report, stored in one transaction, then shown as artifacts.

Split from flows/council_backtest.py, which sits the council; this module only
reads what the sittings stored and the bars.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_table_artifact,
)
from sqlalchemy.orm import Session, sessionmaker

from db.engine import read_sessions_of, transaction
from db.queries import track_record as tr
from db.queries.backtests import json_metrics
from db.queries.instruments import sectors_of
from models.accounts import AccountConfig
from models.backtest import Metrics
from models.council import CouncilRun
from models.days import close_instant
from models.enums import DecisionAction, RunStatus, Side
from services.settings import get_settings
from tasks.backtest.metrics import compute_metrics, metric_text
from tasks.backtest.panel import PricePanel
from tasks.backtest.plot import equity_png, write_png
from tasks.council_backtest.baselines import buy_and_hold_orders, momentum_orders
from tasks.council_backtest.bias import bias_report
from tasks.council_backtest.book import BookOrder, BookResult, simulate_book
from tasks.council_backtest.judge import score_sittings, seats_of

BOOKS = ("council", "buy_and_hold", "momentum")
COUNCIL_BOOKS = {False: "council", True: "council_anon"}  # by anonymised


@dataclass(frozen=True)
class Judged:
    """A finished backtest: its summary (JSON, the flow's result), the metrics as objects
    and the plot, for the artifacts."""

    summary: dict[str, Any]
    metrics: dict[str, Metrics]
    png: bytes


def store_results(
    sessions: sessionmaker[Session],
    backtest_id: int,
    panel: PricePanel,
    bar_of_day: Mapping[date, int],
    sat: Mapping[bool, Mapping[date, int]],
    account: AccountConfig,
    max_positions: int,
) -> Judged:
    """Execute, compare, score and store. `sat` holds the completed sittings' council runs
    by mode (anonymised or not) and day."""
    modes = {run: anonymised for anonymised, days in sat.items() for run in days.values()}
    run_ids = list(modes)
    with read_sessions_of(sessions)() as session:
        decisions = tr.decisions_of(session, run_ids)
        pitches = tr.pitches_of(session, run_ids)
        reviews = tr.reviews_of(session, run_ids)
        runs = {r: session.get(CouncilRun, r) for r in run_ids}
        sectors = {k: v for k, v in sectors_of(session, list(panel.symbols)).items() if v}
        tallies = tr.tallies_of(session, run_ids)
        seats, flagged_runs = seats_of(runs)
    bar_of_as_of = {close_instant(day): bar for day, bar in bar_of_day.items()}
    sitting_bars = sorted(bar_of_day[d] for d in sat[False])
    first = sitting_bars[0]
    books = {
        COUNCIL_BOOKS[anonymised]: [d for d in decisions if modes[d.decision.run_id] is anonymised]
        for anonymised in sat
    }
    orders = {book: _council_orders(chosen, bar_of_as_of) for book, chosen in books.items()}
    pairs = [
        (o, d) for book, chosen in books.items() for o, d in zip(orders[book], chosen, strict=True)
    ]
    decision_of = {o.tag: d.decision.id for o, d in pairs}
    flagged = {o.tag for o, d in pairs if d.decision.run_id in flagged_runs}
    cap = account.limits.max_position_pct
    results = {book: simulate_book(panel, mine, account) for book, mine in orders.items()}
    results["buy_and_hold"] = simulate_book(panel, buy_and_hold_orders(panel, first, cap), account)
    results["momentum"] = simulate_book(
        panel, momentum_orders(panel, sitting_bars, max_positions, cap=cap), account
    )
    metrics = {name: _metrics(r, first) for name, r in results.items()}
    approved = {d.pitch.id for d in decisions if d.pitch is not None}
    outcomes, scores = score_sittings(panel, bar_of_as_of, pitches, reviews, seats, approved)
    plain = [r for r, anonymised in modes.items() if not anonymised]
    report = {
        "bias": bias_report(reviews, [p for p, _ in pitches], sectors),
        "cutoff": {
            "flagged_sittings": sum(1 for r in plain if r in flagged_runs),
            "sittings": len(plain),
            "books": {
                book: _cutoff_split(panel, mine, flagged, account, first)
                for book, mine in orders.items()
            },
            "pitches": _pitch_split(outcomes),
        },
        "modes": {
            ("anonymised" if anonymised else "plain"): _pitch_stats(
                [o for o in outcomes if modes[o["run_id"]] is anonymised]
            )
            for anonymised in sat
        },
        "weighting": _weighting(tallies, max_positions),
        "pitches_scored": len(outcomes),
        "pitches_kept": len(pitches),
    }
    dates = panel.dates[first:]
    curves = [results[b].equity[first:] for b in (*BOOKS, "council_anon") if b in results]
    equity = [[ts.isoformat(), *(float(c[i]) for c in curves)] for i, ts in enumerate(dates)]
    trade_rows = [
        row for name, result in results.items() for row in _trade_rows(name, result, decision_of)
    ]

    def write(session: Session) -> tuple[Decimal, int, int]:
        tr.add_book_trades(session, backtest_id, trade_rows)
        tr.save_outcomes(session, outcomes)
        tr.save_reviewer_scores(session, scores)
        row = tr.finish_council_backtest(
            session,
            backtest_id,
            RunStatus.COMPLETED,
            metrics={k: json_metrics(v.model_dump()) for k, v in metrics.items()},
            equity=equity,
            report=report,
        )
        return row.cost_usd, row.requests, row.cache_hits

    cost, requests, hits = transaction(sessions, write)
    others = {"momentum": curves[2]} | (
        {"council, anonymised": curves[3]} if len(curves) > 3 else {}
    )
    png = equity_png(
        dates, curves[0], curves[1], title=f"Council backtest {backtest_id}", label="council",
        others=others,
    )  # fmt: skip
    plot = write_png(get_settings().backtest_plot_dir, f"council-backtest-{backtest_id}", png)
    council = metrics["council"]
    summary = {
        "council_backtest_id": backtest_id,
        "headline": (
            f"council {metric_text('total_return', council.total_return)} vs buy-and-hold "
            f"{metric_text('total_return', metrics['buy_and_hold'].total_return)}, momentum "
            f"{metric_text('total_return', metrics['momentum'].total_return)}; "
            f"{len(plain)} sittings, ${cost.quantize(Decimal('0.000001'))}"
        ),
        "sittings": len(plain),
        "cost_usd": str(cost.quantize(Decimal("0.000001"))),
        "requests": requests,
        "cache_hits": hits,
        "max_positions": max_positions,
        "metrics": {k: json_metrics(v.model_dump()) for k, v in metrics.items()},
        "trades": {k: len(r.trades()) for k, r in results.items()},
        "refused": {k: sum(1 for lot in r.lots if lot.refused) for k, r in results.items()},
        "cutoff": report["cutoff"],
        "modes": report["modes"],
        "weighting": report["weighting"],
        "bias": report["bias"],
        "plot": str(plot),
    }
    return Judged(summary, metrics, png)


async def publish(backtest_id: int, judged: Judged) -> None:
    """The run's artifacts: metrics beside the baselines, the plot, the cutoff warning, the
    bias report."""
    summary = judged.summary
    cutoff = summary["cutoff"]
    warning = ""
    if cutoff["flagged_sittings"]:
        warning = (
            f"**Warning:** {cutoff['flagged_sittings']} of {cutoff['sittings']} sittings "
            "seat a model whose training cutoff is after their as_of: this model may know "
            "what happened next. Results before and after the cutoff are shown apart."
        )
    rows = [
        {
            "metric": name,
            **{book: metric_text(name, getattr(m, name)) for book, m in judged.metrics.items()},
        }
        for name in Metrics.model_fields
    ]
    description = f"Council backtest {backtest_id}: the council beside its baselines"
    await acreate_table_artifact(
        table=rows,
        key=f"council-backtest-{backtest_id}-metrics",
        description=f"{warning} {description}".strip(),
    )
    bias = summary["bias"]
    lines = [
        f"# Council backtest {backtest_id}",
        "",
        *([warning, ""] if warning else []),
        summary["headline"],
        "",
        f"![equity and drawdown](data:image/png;base64,{base64.b64encode(judged.png).decode()})",
        "",
        *_modes_lines(summary),
        "## Weighting reviewers by skill",
        f"* sittings whose reviewers had a record: {summary['weighting']['with_record']} of "
        f"{summary['weighting']['sittings']}; the top {summary['max_positions']} pitches "
        f"would differ between the two tallies in {summary['weighting']['top_changed']}; "
        f"ranked by the weighted tally in {summary['weighting']['ranked_by_weights']}",
        "",
        "## Bias",
        f"* position effect (rank correlation of display position with score): "
        f"{_num(bias['position_effect'])}",
        f"* mean agreement (Kendall's W): {_num(bias['mean_agreement'])}",
        f"* pitches by sector: {bias['sectors']['by_sector']} "
        f"(top share {_num(bias['sectors']['top_share'])}, "
        f"entropy {_num(bias['sectors']['entropy'])})",
    ]
    await acreate_markdown_artifact(
        markdown="\n".join(lines),
        key=f"council-backtest-{backtest_id}-report",
        description=f"Council backtest {backtest_id}",
    )


def _weighting(tallies: Mapping[int, dict[str, Any]], top: int) -> dict[str, Any]:
    """What weighting the votes by skill did, or would have done: in how many sittings the
    reviewers had a record, and in how many of those the `top` pitches differ between the
    two tallies."""
    known = [t for t in tallies.values() if t.get("weighted_order")]
    changed = [t for t in known if t["plain_order"][:top] != t["weighted_order"][:top]]
    return {
        "sittings": len(tallies),
        "with_record": len(known),
        "top_changed": len(changed),
        "ranked_by_weights": sum(1 for t in tallies.values() if t.get("ranked_by") == "weighted"),
    }


def _modes_lines(summary: dict[str, Any]) -> list[str]:
    """The plain and the anonymised council side by side, when both sat."""
    modes = summary["modes"]
    if "anonymised" not in modes:
        return []
    metrics = summary["metrics"]
    lines = ["## Plain vs anonymised", ""]
    for mode, book in (("plain", "council"), ("anonymised", "council_anon")):
        stats = modes[mode]
        lines.append(
            f"* {mode}: total return {metric_text('total_return', metrics[book]['total_return'])}, "
            f"{stats['pitches']} pitches scored, mean excess {_num(stats['mean_excess'])}, "
            f"hit rate {_num(stats['hit_rate'])}"
        )
    return [*lines, ""]


def _council_orders(
    decisions: Sequence[tr.SittingDecision], bar_of_as_of: Mapping[datetime, int]
) -> list[BookOrder]:
    """Each buy or sell decision as an order at its sitting's close, with its pitch's bracket
    and horizon."""
    return [
        BookOrder(
            bar=bar_of_as_of[d.as_of],
            symbol=d.decision.symbol,
            side=Side.BUY if d.decision.action is DecisionAction.BUY else Side.SELL,
            tag=f"decision-{d.decision.id}",
            weight=Decimal(d.decision.target_weight),
            take_profit=d.pitch.take_profit if d.pitch else None,
            stop_loss=d.pitch.stop_loss if d.pitch else None,
            horizon=d.pitch.horizon_days if d.pitch else None,
        )
        for d in decisions
    ]


def _metrics(result: BookResult, first: int) -> Metrics:
    equity, trades = result.since(first)
    return compute_metrics(equity, trades, init_cash=result.init_cash)


def _cutoff_split(
    panel: PricePanel,
    orders: list[BookOrder],
    flagged: set[str],
    account: AccountConfig,
    first: int,
) -> dict[str, Any]:
    """The council's book run on the flagged sittings' decisions alone and on the others'
    alone: a model that remembers shows up as a gap between the two."""
    out: dict[str, Any] = {}
    for name, chosen in (
        ("before_cutoff", [o for o in orders if o.tag in flagged]),
        ("after_cutoff", [o for o in orders if o.tag not in flagged]),
    ):
        if chosen:
            m = _metrics(simulate_book(panel, chosen, account), first)
            out[name] = {"decisions": len(chosen), **json_metrics(m.model_dump())}
        else:
            out[name] = {"decisions": 0}
    return out


def _pitch_split(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "before_cutoff": _pitch_stats([o for o in outcomes if o["may_know"]]),
        "after_cutoff": _pitch_stats([o for o in outcomes if not o["may_know"]]),
    }


def _pitch_stats(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How many pitches, their mean excess return over the universe and how many beat it."""
    excess = [o["excess"] for o in outcomes]
    return {
        "pitches": len(outcomes),
        "mean_excess": float(np.mean(excess)) if excess else None,
        "hit_rate": float(np.mean([e > 0 for e in excess])) if excess else None,
    }


def _trade_rows(
    book: str, result: BookResult, decision_of: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Every lot the book opened (a baseline's closing orders are part of their lots)."""
    panel = result.panel
    rows = []
    for lot in result.lots:
        if lot.order.closes is not None:
            continue
        row: dict[str, Any] = {
            "book": book,
            "decision_id": decision_of.get(lot.order.tag) if book == "council" else None,
            "decided_at": panel.dates[lot.order.bar].to_pydatetime() + timedelta(days=1),
            "symbol": lot.order.symbol,
            "side": lot.order.side,
            "weight": lot.order.weight,
            "qty": lot.qty,
            "refused": lot.refused,
        }
        if lot.entry_price is not None:
            end = result.settled(lot)
            row |= {
                "entry_ts": panel.dates[lot.entry_bar].to_pydatetime(),
                "entry_price": lot.entry_price,
                "exit_ts": panel.dates[end.exit_bar].to_pydatetime(),
                "exit_price": end.exit_price,
                "pnl": end.pnl,
                "return_pct": end.ret,
                "exit_reason": str(end.reason),
            }
        rows.append(row)
    return rows


def _num(value: float | None) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.3f}"
    )
