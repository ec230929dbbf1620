"""A book of orders decided at closes, executed over stored bars as the paper account would.

The council's decisions are bracket orders with absolute exit prices, sized
from the account's equity when they are decided; the vectorised engine
(tasks/backtest/kernel.py) models signals with stops as fractions of the
entry, so it cannot carry them. Here the fill model *is* the paper broker
(services/brokers/paper.py), fed from the panel through the same path as
`feed_bars` (tasks/execution/paper_feed.py): a market order decided at a
close fills at the next open, slipped; a bracket's legs start working after
the entry fills and the bar's path (open -> nearer extreme -> other extreme
-> close) decides which leg fills first, at its level, or at the open when a
bar gaps past it. Each order is sized and checked by `size_and_check`
(tasks/execution/intents.py), the judgement live execution makes, with the
account's own config: what a week of the backtest executes is what the paper
account would have executed, fills and refusals alike
(docs/decisions/0030-council-backtest.md).

Each order opens a lot (its own round trip): the lot ends when a leg fills,
when its horizon has passed (a market order at the next open), when its
symbol's data ends (at that last close), or it is still open at the end
(marked at the last close). Lots are returned as the engine's trade records,
so the engine's metrics apply unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np

from models.accounts import AccountConfig
from models.backtest import ExitReason
from models.broker import BrokerFill, OrderRequest
from models.enums import OrderType, Side, TimeInForce
from services.brokers.paper import PaperBroker
from services.brokers.protocol import OrderNotCancelableError, OrderRejectedError
from tasks.backtest import records
from tasks.backtest.panel import PricePanel
from tasks.execution.intents import MarketView, size_and_check, to_cents
from tasks.execution.paper_feed import ohlc_path, play_path
from tasks.execution.risk import AccountState

DAY = timedelta(days=1)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BookOrder:
    """An order decided at the close of `bar`: open a lot of `weight` of equity on `symbol`,
    with a bracket when both exit prices are given; or, with `closes`, close that lot."""

    bar: int
    symbol: str
    side: Side
    tag: str  # the lot's name, unique in a book (a decision's id, a baseline's step)
    weight: Decimal = Decimal(0)
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    horizon: int | None = None  # bars the lot may stay open after its entry bar
    closes: str | None = None  # the tag of the lot this order closes


@dataclass
class Lot:
    """One order's round trip, as the broker filled it."""

    order: BookOrder
    qty: Decimal = Decimal(0)
    entry_id: str | None = None
    close_id: str | None = None
    entry_bar: int = -1
    entry_price: Decimal | None = None
    entry_fee: Decimal = Decimal(0)
    exit_bar: int = -1
    exit_price: Decimal | None = None
    exit_fee: Decimal = Decimal(0)
    exit_reason: ExitReason | None = None
    refused: str | None = None  # sizing, a pre-trade check, or the broker said no

    @property
    def open(self) -> bool:
        return self.entry_price is not None and self.exit_price is None


@dataclass(frozen=True)
class Settled:
    """A filled lot's end: its exit (or the last close, still open), net P&L and return on
    its outlay (notional plus entry commission)."""

    exit_bar: int
    exit_price: Decimal
    reason: ExitReason
    pnl: Decimal
    ret: float | None


@dataclass(frozen=True)
class BookResult:
    """Equity at every close, and every lot (refused ones included, with their reason)."""

    panel: PricePanel
    init_cash: float
    equity: np.ndarray
    lots: list[Lot] = field(default_factory=list)

    def settled(self, lot: Lot) -> Settled:
        """How a filled lot ended, or stands at the last close if still open."""
        assert lot.entry_price is not None
        if lot.exit_price is None:  # still open: marked at the last close, as the engine does
            last = len(self.panel.dates) - 1
            mark = self.panel.last_close(self.panel.symbols.index(lot.order.symbol), last)
            exit_bar, exit_price, reason = last, Decimal(str(mark)), ExitReason.OPEN
        else:
            assert lot.exit_reason is not None
            exit_bar, exit_price, reason = lot.exit_bar, lot.exit_price, lot.exit_reason
        sign = 1 if lot.order.side is Side.BUY else -1
        pnl = sign * lot.qty * (exit_price - lot.entry_price) - lot.entry_fee - lot.exit_fee
        outlay = lot.qty * lot.entry_price + lot.entry_fee
        return Settled(exit_bar, exit_price, reason, pnl, float(pnl / outlay) if outlay else None)

    def trades(self) -> np.ndarray:
        """The filled lots as the engine's trade records (one cash pool, column = symbol)."""
        filled = [lot for lot in self.lots if lot.entry_price is not None]
        out = np.empty(len(filled), dtype=records.TRADE_DTYPE)
        index = {s: i for i, s in enumerate(self.panel.symbols)}
        for row, lot in zip(out, filled, strict=True):
            end = self.settled(lot)
            row["col"] = row["symbol"] = index[lot.order.symbol]
            row["group"] = 0
            row["direction"] = 1 if lot.order.side is Side.BUY else -1
            row["entry_bar"], row["exit_bar"] = lot.entry_bar, end.exit_bar
            row["entry_price"], row["exit_price"] = (
                float(lot.entry_price or 0),
                float(end.exit_price),
            )
            row["entry_fees"], row["exit_fees"] = float(lot.entry_fee), float(lot.exit_fee)
            row["qty"], row["pnl"] = float(lot.qty), float(end.pnl)
            row["ret"] = math.nan if end.ret is None else end.ret
            row["exit_reason"] = records.EXIT_REASONS.index(end.reason)
        return out

    def since(self, first: int) -> tuple[np.ndarray, np.ndarray]:
        """(equity, trades) from bar `first` on, trade bars counted from there: the span a
        backtest is judged on, the history before it read only for sizing."""
        trades = self.trades()
        trades = trades[trades["entry_bar"] >= first]
        trades["entry_bar"] -= first
        trades["exit_bar"] -= first
        return self.equity[first:], trades


def simulate_book(
    panel: PricePanel, orders: Sequence[BookOrder], account: AccountConfig
) -> BookResult:
    """Execute `orders` over `panel` for `account` (its cash, costs, sizing and limits)."""
    return asyncio.run(_Book(panel, account).run(orders))


class _Book:
    def __init__(self, panel: PricePanel, account: AccountConfig) -> None:
        self.panel = panel
        self.account = account
        self.index = {s: i for i, s in enumerate(panel.symbols)}
        self.now = _close_instant(panel, 0)
        self.broker = PaperBroker(
            account.starting_cash,
            slippage_bps=account.slippage_bps,
            commission_per_share=account.commission_per_share,
            clock=lambda: self.now,
        )
        self.lots: dict[str, Lot] = {}
        self.by_order: dict[str, tuple[Lot, str]] = {}  # broker order id -> (lot, role)
        self.last_bar = panel.last_bars()
        self.day_start = account.starting_cash

    async def run(self, orders: Sequence[BookOrder]) -> BookResult:
        todo: dict[int, list[BookOrder]] = defaultdict(list)
        tags: set[str] = set()
        for order in orders:
            if order.tag in tags:
                raise ValueError(f"two orders are tagged {order.tag!r}")
            tags.add(order.tag)
            todo[order.bar].append(order)
        n_bars = len(self.panel.dates)
        equity = np.empty(n_bars)
        for t in range(n_bars):
            self.now = _close_instant(self.panel, t)
            self._play(t)
            await self._end_of_data(t)
            value = await self._equity(t)
            equity[t] = float(value)
            await self._expire(t)
            for order in todo.get(t, ()):  # placing moves no money: the close's equity stands
                await self._place(order, t)
            self.day_start = value  # the next close's daily loss counts from this one
        lots = list(self.lots.values())
        return BookResult(self.panel, float(self.account.starting_cash), equity, lots)

    # -- prices --------------------------------------------------------------------------

    def _active(self) -> list[str]:
        return sorted(self.broker.symbols_in_play())

    def _play(self, t: int) -> None:
        p = self.panel
        start = self.panel.dates[t].to_pydatetime()
        for symbol in self._active():
            s = self.index[symbol]
            o, h, lo, c = (float(a[t, s]) for a in (p.open, p.high, p.low, p.close))
            if math.isnan(o):
                continue
            path = ohlc_path(o, h, lo, c, start, DAY)
            for fill in play_path(self.broker, symbol, path, self.broker.last_price_at(symbol)):
                self._book_fill(fill, t)

    def _book_fill(self, fill: BrokerFill, t: int) -> None:
        known = self.by_order.get(fill.order_id)
        if known is None:
            return
        lot, role = known
        if role == "entry":
            lot.entry_bar, lot.entry_price, lot.entry_fee = t, fill.price, fill.commission
            return
        lot.exit_bar, lot.exit_price, lot.exit_fee = t, fill.price, fill.commission
        lot.exit_reason = {
            "tp": ExitReason.TAKE_PROFIT,
            "sl": ExitReason.STOP_LOSS,
            "close": ExitReason.SIGNAL,
            "end": ExitReason.END_OF_DATA,
        }[role]

    async def _equity(self, t: int) -> Decimal:
        """Cash plus every position at its last close (the broker marks at its last price,
        which is that close for every symbol it was played)."""
        marks = Decimal(0)
        for position in await self.broker.positions():
            close = self.panel.last_close(self.index[position.symbol], t)
            mark = Decimal(str(close)) if not math.isnan(close) else position.avg_cost
            marks += position.qty * mark
        return (await self.broker.account()).cash + marks

    # -- lots ending ---------------------------------------------------------------------

    async def _expire(self, t: int) -> None:
        """Lots whose horizon has passed are closed at the next open, their legs canceled."""
        for lot in list(self.lots.values()):
            horizon = lot.order.horizon
            if horizon is None or not lot.open or lot.close_id is not None:
                continue
            if t - lot.entry_bar >= horizon:
                await self._close_lot(lot, "close")

    async def _end_of_data(self, t: int) -> None:
        """A lot whose symbol has no later bar is closed at its last close (a delisting)."""
        if t == len(self.panel.dates) - 1:
            return
        for lot in list(self.lots.values()):
            s = self.index[lot.order.symbol]
            if lot.open and lot.close_id is None and self.last_bar[s] == t:
                await self._close_lot(lot, "end")
                close = Decimal(str(self.panel.close[t, s]))
                stamp = self.now + timedelta(microseconds=1)
                for fill in self.broker.on_price(lot.order.symbol, close, stamp):
                    self._book_fill(fill, t)

    async def _close_lot(self, lot: Lot, role: str) -> None:
        """Cancel the lot's working legs and send the market order that closes it."""
        assert lot.entry_id is not None
        with contextlib.suppress(OrderNotCancelableError):  # no leg left working
            await self.broker.cancel(lot.entry_id)  # the entry is filled: only its legs go
        request = OrderRequest(
            client_order_id=f"{lot.order.tag}-{role}",
            symbol=lot.order.symbol,
            side=Side.SELL if lot.order.side is Side.BUY else Side.BUY,
            qty=lot.qty,
            type=OrderType.MARKET,
            time_in_force=TimeInForce.GTC,
        )
        try:
            placed = await self.broker.submit(request)
        except OrderRejectedError as exc:  # its legs are gone: tried again at the next close
            logger.warning("%s: closing %s refused: %s", lot.order.symbol, lot.order.tag, exc)
            return
        lot.close_id = placed.order_id
        self.by_order[placed.order_id] = (lot, role)

    # -- lots opening --------------------------------------------------------------------

    async def _place(self, order: BookOrder, t: int) -> None:
        if order.closes is not None:
            target = self.lots.get(order.closes)
            if target is not None and target.open and target.close_id is None:
                await self._close_lot(target, "close")
            return
        lot = self.lots[order.tag] = Lot(order)
        s = self.index.get(order.symbol)
        if s is None:
            lot.refused = f"{order.symbol} is not in the backtest's universe"
            return
        price = self.panel.last_close(s, t)
        if math.isnan(price):
            lot.refused = f"{order.symbol}: no price known at the decision"
            return
        reference = Decimal(str(price))
        if order.symbol not in self.broker.symbols_in_play():  # not played: give it the close
            self.broker.on_price(order.symbol, reference, self.now)
        money = await self.broker.account()
        state = AccountState(
            equity=money.equity,
            cash=money.cash,
            buying_power=money.buying_power,
            day_start_equity=self.day_start,
            positions={p.symbol: p.qty for p in await self.broker.positions()},
            open_orders=await self._open_orders(),
        )
        tp, sl = to_cents(order.take_profit), to_cents(order.stop_loss)
        sizing, _, reason = size_and_check(
            symbol=order.symbol,
            side=order.side,
            weight=order.weight,
            take_profit=tp,
            stop_loss=sl,
            account=self.account,
            view=MarketView(state=state, price=reference, as_of=self.now, now=self.now),
            closes=self._closes(s, t),
        )
        if reason is not None:
            lot.refused = reason
            return
        bracket = tp is not None and sl is not None
        request = OrderRequest(
            client_order_id=order.tag,
            symbol=order.symbol,
            side=order.side,
            qty=sizing.qty,
            type=OrderType.MARKET,
            time_in_force=TimeInForce.GTC,
            take_profit=tp if bracket else None,
            stop_loss=sl if bracket else None,
        )
        try:
            placed = await self.broker.submit(request)
        except OrderRejectedError as exc:
            lot.refused = f"broker refused: {exc.reason}"
            return
        lot.qty, lot.entry_id = sizing.qty, placed.order_id
        self.by_order[placed.order_id] = (lot, "entry")
        for leg, role in zip(placed.legs, ("tp", "sl"), strict=False):
            self.by_order[leg.order_id] = (lot, role)

    def _closes(self, s: int, t: int) -> list[Decimal]:
        lookback = self.account.sizing.vol_lookback_days + 1
        column = self.panel.close[: t + 1, s]
        known = column[~np.isnan(column)][-lookback:]
        return [Decimal(str(float(c))) for c in known]

    async def _open_orders(self) -> int:
        """Open orders, bracket legs included, as `account_state` counts them."""
        return sum(
            int(o.is_open) + sum(1 for leg in o.legs if leg.is_open)
            for o in await self.broker.list_orders(open_only=True)
        )


def _close_instant(panel: PricePanel, t: int) -> datetime:
    """When bar `t`'s close is known: the bar's end (its stamp is its start)."""
    stamp: datetime = panel.dates[t].to_pydatetime()
    return stamp + DAY
