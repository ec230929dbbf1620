"""The council backtest's book executes decisions as the live paper account would.

The reference here is built from the live execution's own parts over the
database, not from the panel: a `PaperBroker` fed by `feed_bars` (the stored
bars as the execution flow plays them), sized by `size_order` from
`last_close`/`bars_as_of` (the inputs `plan_intent` reads), checked by
`pre_trade_checks`. The book must give every order the same quantity, the
same entry and exit fills, on the same bars, for the same reasons.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.orm import Session

from db.engine import make_engine, make_session_factory
from db.queries.bars import bars_as_of, bars_frame
from models.accounts import AccountConfig, RiskLimits, Sizing
from models.backtest import BacktestConfig, ExitReason
from models.broker import OrderRequest
from models.enums import OrderLeg, OrderType, Side, TimeInForce
from services.brokers.paper import PaperBroker
from tasks.backtest.engine import buy_and_hold as engine_buy_and_hold
from tasks.backtest.metrics import compute_metrics
from tasks.backtest.panel import PricePanel
from tasks.council_backtest.baselines import buy_and_hold_orders, momentum_orders
from tasks.council_backtest.book import BookOrder, simulate_book
from tasks.council_backtest.outcomes import STOP_LOSS, TAKE_PROFIT, score_pitch
from tasks.council_backtest.sittings import sitting_bars
from tasks.execution.intents import to_cents
from tasks.execution.paper_feed import feed_bars, last_close
from tasks.execution.risk import AccountState, ProposedOrder, pre_trade_checks, rejection_reason
from tasks.execution.sizing import size_order

SYMBOLS = ["AAPL", "JPM", "XOM"]
START, END = date(2018, 1, 2), date(2018, 6, 29)
ACCOUNT = AccountConfig(
    name="bt",
    slippage_bps=Decimal(5),
    commission_per_share=Decimal("0.005"),
    limits=RiskLimits(allow_short=True, max_position_pct=Decimal("0.5")),
)


@pytest.fixture
def db(sample_db_url: str) -> Iterator[Session]:
    engine = make_engine(sample_db_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def _panel(session: Session) -> PricePanel:
    return PricePanel.from_frame(bars_frame(session, SYMBOLS, START, END), SYMBOLS)


def _orders(panel: PricePanel) -> list[BookOrder]:
    """A decision every week on a symbol in turn, long and short, brackets tight enough that
    both legs fill now and then; weights that make sizing and the position limit matter."""
    orders = []
    for k, t in enumerate(range(4, len(panel.dates) - 10, 5)):
        symbol = SYMBOLS[k % len(SYMBOLS)]
        close = Decimal(str(panel.close[t, panel.symbols.index(symbol)]))
        long = k % 3 != 2
        up, down = close * Decimal("1.03"), close * Decimal("0.975")
        orders.append(
            BookOrder(
                bar=t,
                symbol=symbol,
                side=Side.BUY if long else Side.SELL,
                tag=f"decision-{k}",
                weight=Decimal("0.15") if k % 4 else Decimal("0.6"),
                take_profit=up if long else down,
                stop_loss=down if long else up,
            )
        )
    return orders


def _reference(
    session: Session, panel: PricePanel, orders: list[BookOrder]
) -> dict[str, dict[str, Any]]:
    """The live parts over the database: per order, its qty and its fills, or its refusal."""
    now = [datetime(2017, 12, 29, tzinfo=UTC)]
    broker = PaperBroker(
        ACCOUNT.starting_cash,
        slippage_bps=ACCOUNT.slippage_bps,
        commission_per_share=ACCOUNT.commission_per_share,
        clock=lambda: now[0],
    )
    out: dict[str, dict[str, Any]] = {}
    for order in orders:
        as_of = panel.dates[order.bar].to_pydatetime() + timedelta(days=1)
        now[0] = as_of
        feed_bars(session, broker, SYMBOLS, as_of)
        money = asyncio.run(broker.account())
        held = {p.symbol: p.qty for p in asyncio.run(broker.positions())}
        price, _ = last_close(session, order.symbol, as_of) or (None, None)
        assert price is not None
        if broker.last_price(order.symbol) is None:
            broker.on_price(order.symbol, price, as_of)
        closes = [
            Decimal(str(b.close))
            for b in bars_as_of(
                session, [order.symbol], as_of, ACCOUNT.sizing.vol_lookback_days + 1
            )
        ]
        position = held.get(order.symbol, Decimal(0))
        sizing = size_order(
            weight=order.weight,
            price=price,
            equity=money.equity,
            account=ACCOUNT,
            closes=closes,
            buying_power=money.buying_power,
            closable=max(Decimal(0), position if order.side is Side.SELL else -position),
        )
        if sizing.skipped:
            out[order.tag] = {"refused": True}
            continue
        tp, sl = to_cents(order.take_profit), to_cents(order.stop_loss)
        working = asyncio.run(broker.list_orders(open_only=True))
        state = AccountState(
            equity=money.equity,
            cash=money.cash,
            buying_power=money.buying_power,
            positions=held,  # the daily loss limit is off: day-start equity is not read
            open_orders=sum(int(o.is_open) + sum(g.is_open for g in o.legs) for o in working),
        )
        proposed = ProposedOrder(
            symbol=order.symbol, side=order.side, qty=sizing.qty, price=price,
            take_profit=tp, stop_loss=sl, legs=2,
        )  # fmt: skip
        if rejection_reason(pre_trade_checks(proposed, state, ACCOUNT.limits, as_of)):
            out[order.tag] = {"refused": True}
            continue
        request = OrderRequest(
            client_order_id=order.tag, symbol=order.symbol, side=order.side, qty=sizing.qty,
            type=OrderType.MARKET, time_in_force=TimeInForce.GTC, take_profit=tp, stop_loss=sl,
        )  # fmt: skip
        placed = asyncio.run(broker.submit(request))
        out[order.tag] = {"qty": sizing.qty, "id": placed.order_id, "legs": placed.legs}
    feed_bars(
        session,
        broker,
        SYMBOLS,
        datetime.combine(END, datetime.min.time(), UTC) + timedelta(days=1),
    )
    fills = asyncio.run(broker.fills())
    by_order = {f.order_id: f for f in fills}
    for record in out.values():
        if "id" not in record:
            continue
        entry = by_order.get(record["id"])
        record["entry"] = (entry.price, entry.ts.date()) if entry else None
        record["exit"] = None
        for leg in record["legs"]:
            if (f := by_order.get(leg.order_id)) is not None:
                reason = (
                    ExitReason.TAKE_PROFIT
                    if leg.leg is OrderLeg.TAKE_PROFIT
                    else ExitReason.STOP_LOSS
                )
                record["exit"] = (f.price, f.ts.date(), reason)
    return out


def test_the_book_fills_each_decision_as_the_paper_broker_fed_by_stored_bars(db: Session) -> None:
    panel = _panel(db)
    orders = _orders(panel)
    result = simulate_book(panel, orders, ACCOUNT)
    reference = _reference(db, panel, orders)
    lots = {lot.order.tag: lot for lot in result.lots}
    compared = exits = 0
    for tag, want in reference.items():
        lot = lots[tag]
        if want.get("refused"):
            assert lot.refused is not None, tag
            continue
        assert lot.refused is None, (tag, lot.refused)
        assert lot.qty == want["qty"], tag
        assert want["entry"] is not None
        assert lot.entry_price == want["entry"][0], tag
        assert panel.dates[lot.entry_bar].date() == want["entry"][1], tag
        if want["exit"] is None:
            assert lot.exit_price is None, tag
        else:
            exits += 1
            assert (lot.exit_price, panel.dates[lot.exit_bar].date(), lot.exit_reason) == want[
                "exit"
            ], tag
        compared += 1
    reasons = {lot.exit_reason for lot in result.lots}
    assert compared >= 15
    assert exits >= 10
    assert {ExitReason.TAKE_PROFIT, ExitReason.STOP_LOSS} <= reasons
    assert any(lot.refused for lot in result.lots)  # the 60 % orders meet the position limit


def test_a_decision_enters_at_the_next_open_slipped_and_pays_commission(db: Session) -> None:
    panel = _panel(db)
    t, s = 10, panel.symbols.index("AAPL")
    order = BookOrder(bar=t, symbol="AAPL", side=Side.BUY, tag="one", weight=Decimal("0.1"))
    lot = simulate_book(panel, [order], ACCOUNT).lots[0]
    assert lot.entry_bar == t + 1
    open_ = Decimal(str(panel.open[t + 1, s]))
    assert lot.entry_price == open_ + open_ * ACCOUNT.slippage_bps / Decimal(10_000)
    assert lot.entry_fee == lot.qty * ACCOUNT.commission_per_share
    assert lot.exit_price is None  # no bracket, no horizon: still open at the end


def test_a_lot_past_its_horizon_is_closed_at_the_next_open_and_its_legs_canceled(
    db: Session,
) -> None:
    panel = _panel(db)
    t, s = 10, panel.symbols.index("XOM")
    close = Decimal(str(panel.close[t, s]))
    wide = BookOrder(
        bar=t, symbol="XOM", side=Side.BUY, tag="wide", weight=Decimal("0.1"),
        take_profit=close * 2, stop_loss=close / 2, horizon=3,
    )  # fmt: skip
    result = simulate_book(panel, [wide], ACCOUNT)
    lot = result.lots[0]
    assert lot.exit_reason is ExitReason.SIGNAL
    assert lot.exit_bar == lot.entry_bar + 4  # held 3 bars after entry, sold at the next open
    open_ = Decimal(str(panel.open[lot.exit_bar, s]))
    assert lot.exit_price == open_ - open_ * ACCOUNT.slippage_bps / Decimal(10_000)
    assert result.equity[-1] == pytest.approx(
        float(ACCOUNT.starting_cash) + float(result.trades()["pnl"].sum()), abs=1e-6
    )


def test_equal_weight_buy_and_hold_matches_the_engines_benchmark(db: Session) -> None:
    """The book's baseline and `aitrader backtest`'s benchmark are one thing bought two ways:
    with no costs and fractional-free cash, their curves agree to the shares' rounding."""
    panel = _panel(db)
    free = AccountConfig(
        name="bt",
        slippage_bps=Decimal(0),
        sizing=Sizing(min_notional=Decimal(0), buying_power_reserve=Decimal(0)),
        limits=RiskLimits(max_position_pct=None),
    )
    book = simulate_book(panel, buy_and_hold_orders(panel, 0), free)
    engine = engine_buy_and_hold(panel, BacktestConfig())
    ours, theirs = book.equity[1:], engine.set_equity()[1:, 0]
    assert np.max(np.abs(ours / theirs - 1)) < 0.002  # whole shares vs the engine's sizing
    trades = book.trades()
    assert list(trades["entry_bar"]) == [1, 1, 1] == list(engine.trades["entry_bar"])
    assert np.allclose(trades["entry_price"], engine.trades["entry_price"])


def test_momentum_holds_the_best_trailing_returns_and_rotates(db: Session) -> None:
    frame = bars_frame(db, SYMBOLS, date(2017, 6, 1), END)
    panel = PricePanel.from_frame(frame, SYMBOLS)
    bars = sitting_bars(panel.dates, START, END, "monthly")
    orders = momentum_orders(panel, bars, top=1, lookback=20, cap=Decimal("0.45"))
    opened = [o for o in orders if o.closes is None]
    for o in opened:
        s = panel.symbols.index(o.symbol)
        mine = panel.close[o.bar, s] / panel.close[o.bar - 20, s]
        others = panel.close[o.bar] / panel.close[o.bar - 20]
        assert mine == np.nanmax(others)  # only the close at the sitting and before is read
    closes = [o for o in orders if o.closes is not None]
    assert len(closes) >= 1
    assert all(c.closes in {o.tag for o in opened} for c in closes)
    result = simulate_book(panel, orders, ACCOUNT)
    assert not [lot.refused for lot in result.lots if lot.refused]  # capped under the limit
    assert compute_metrics(result.equity, result.trades(), init_cash=result.init_cash).trades >= 1


def test_a_pitch_outcome_is_the_first_level_the_bar_path_reaches(db: Session) -> None:
    """Outcomes read bars the way the book fills them: the same lots end the same way."""
    panel = _panel(db)
    orders = [o for o in _orders(panel)]
    result = simulate_book(
        panel, orders, AccountConfig(name="x", limits=RiskLimits(allow_short=True))
    )
    agreed = 0
    for lot in result.lots:
        if lot.exit_reason not in (ExitReason.TAKE_PROFIT, ExitReason.STOP_LOSS):
            continue
        o = lot.order
        scored = score_pitch(panel, o.symbol, o.bar, o.side, to_cents(o.take_profit),
                             to_cents(o.stop_loss), 60)  # fmt: skip
        assert scored is not None
        want = TAKE_PROFIT if lot.exit_reason is ExitReason.TAKE_PROFIT else STOP_LOSS
        assert (scored.outcome, scored.exit_bar) == (want, lot.exit_bar), o.tag
        agreed += 1
    assert agreed >= 10


def test_sittings_fall_on_each_periods_last_stored_day_and_skip_a_cut_period() -> None:
    every = pd.bdate_range("2018-01-01", "2018-04-06", tz="UTC")
    dates = every[every != pd.Timestamp("2018-03-30", tz="UTC")]  # Good Friday
    weekly = [
        str(dates[b].date())
        for b in sitting_bars(dates, date(2018, 1, 1), date(2018, 4, 6), "weekly")
    ]
    assert weekly[:2] == ["2018-01-05", "2018-01-12"]
    assert weekly[-2:] == [
        "2018-03-29",
        "2018-04-06",
    ]
    cut = sitting_bars(dates, date(2018, 1, 1), date(2018, 4, 4), "weekly")
    assert str(dates[cut[-1]].date()) == "2018-03-29"  # the week of 2 April is not over
    monthly = sitting_bars(dates, date(2018, 1, 1), date(2018, 4, 6), "monthly")
    assert [str(dates[b].date()) for b in monthly] == ["2018-01-31", "2018-02-28", "2018-03-29"]
