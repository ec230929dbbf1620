"""The built-in paper broker: orders fill from the price stream, state survives a restart.

Fills are driven by `on_price`, never by the clock: a market order fills at the
next price after it was submitted (moved against the trader by `slippage_bps`),
a limit order once the price reaches its limit (at the better of the two), a
stop order once the price reaches its stop (at that price, slipped: a gap
fills at the gapped price, worse than the stop). Orders fill completely.
A bracket's exits are held until the entry fills and start working on the next
price; when one fills the other is canceled (one-cancels-other).

Buying power is "no leverage": equity minus gross exposure at the last prices,
minus what open orders reserved at submit. An order needs buying power for the
part that opens or grows a position (reducing needs none), priced at its limit,
its stop, or the last price slipped; with no last price, a market order is
refused. Shorts are allowed under the same rule.

With `state_path` the whole state is written atomically after every change and
read back on construction (then `starting_cash` is ignored), so a restart
loses no order, fill, position, price or used client_order_id.

What it leaves out: partial fills, day-order expiry (there is no session
calendar here), margin calls, borrow fees, and re-checking buying power at fill.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from pydantic import BaseModel, Field

from models.base import utcnow
from models.broker import (
    BrokerAccount,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    OrderRequest,
)
from models.enums import OrderLeg, OrderStatus, OrderType, Side
from services.brokers.protocol import (
    DuplicateClientOrderIdError,
    OrderNotCancelableError,
    OrderRejectedError,
    UnknownOrderError,
)

AVG_COST_QUANTUM = Decimal("0.00000001")  # the PRICE column's scale
_BPS = Decimal(10_000)


class PaperBroker:
    """A `Broker` that fills from prices fed to `on_price`. Deterministic ids: paper-000001, ..."""

    def __init__(
        self,
        starting_cash: Decimal,
        *,
        slippage_bps: Decimal = Decimal(0),
        commission_per_share: Decimal = Decimal(0),
        state_path: Path | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.slippage_bps = Decimal(slippage_bps)
        self.commission_per_share = Decimal(commission_per_share)
        self.state_path = state_path
        self._clock = clock
        if state_path is not None and state_path.exists():
            self._state = _State.model_validate_json(state_path.read_text())
        else:
            self._state = _State(cash=Decimal(starting_cash))
            self._save()

    # -- the Broker protocol ---------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        ids = _client_ids(request)
        if any(cid in self._state.client_order_ids for cid in ids):
            raise DuplicateClientOrderIdError(request.client_order_id)
        reference = self._reference_price(request)
        opening = self._opening_qty(request.symbol, request.side, request.qty)
        required = opening * reference + request.qty * self.commission_per_share
        available = self._buying_power()
        if opening > 0 and required > available:  # reducing a position needs no power
            raise OrderRejectedError(
                f"{request.symbol}: insufficient buying power: {request.side} {request.qty} "
                f"needs {required}, {available} available"
            )
        entry = self._add(request, ids[0], OrderStatus.ACCEPTED, reserved=required)
        if request.take_profit is not None and request.stop_loss is not None:
            exit_side = Side.SELL if request.side is Side.BUY else Side.BUY
            for cid, leg, type_, price in (
                (ids[1], OrderLeg.TAKE_PROFIT, OrderType.LIMIT, request.take_profit),
                (ids[2], OrderLeg.STOP_LOSS, OrderType.STOP, request.stop_loss),
            ):
                limit = price if type_ is OrderType.LIMIT else None
                stop = price if type_ is OrderType.STOP else None
                child = request.model_copy(
                    update={
                        "side": exit_side,
                        "type": type_,
                        "limit_price": limit,
                        "stop_price": stop,
                    }
                )
                self._add(child, cid, OrderStatus.NEW, leg=leg, parent_id=entry.order.order_id)
        self._state.client_order_ids.update(ids)
        self._save()
        return self._view(entry)

    async def cancel(self, order_id: str) -> BrokerOrder:
        record = self._state.orders.get(order_id)
        if record is None:
            raise UnknownOrderError(f"no paper order {order_id!r}")
        still_open = [r for r in (record, *self._children(record)) if r.order.is_open]
        if not still_open:
            if record.order.status is OrderStatus.CANCELED:
                return self._view(record)
            raise OrderNotCancelableError(
                f"order {order_id} is {record.order.status}; nothing of it is open"
            )
        for r in still_open:
            self._set_status(r, OrderStatus.CANCELED)
        self._save()
        return self._view(record)

    async def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        for record in self._state.orders.values():
            if record.order.client_order_id == client_order_id:
                return self._view(record)
        return None

    async def list_orders(self, open_only: bool = False) -> list[BrokerOrder]:
        tops = [r for r in self._state.orders.values() if r.parent_id is None]
        if open_only:
            tops = [r for r in tops if any(x.order.is_open for x in (r, *self._children(r)))]
        return [self._view(r) for r in tops]

    async def fills(self, since: datetime | None = None) -> list[BrokerFill]:
        chosen = [f for f in self._state.fills if since is None or f.ts >= since]
        return sorted(chosen, key=lambda f: f.ts)

    async def positions(self) -> list[BrokerPosition]:
        return [self._state.positions[s] for s in sorted(self._state.positions)]

    async def account(self) -> BrokerAccount:
        return BrokerAccount(
            cash=self._state.cash, equity=self._equity(), buying_power=self._buying_power()
        )

    # -- the price feed ----------------------------------------------------------------------

    def on_price(self, symbol: str, price: Decimal | float, ts: datetime) -> list[BrokerFill]:
        """Take a new price for `symbol` at `ts`; fill what it triggers and return those fills.

        A float price is converted with `Decimal(str(price))` here, at the money edge.
        """
        px = price if isinstance(price, Decimal) else Decimal(str(price))
        if not px > 0:
            raise ValueError(f"{symbol}: price {price!r} is not positive")
        symbol = symbol.strip().upper()
        self._state.last_prices[symbol] = px
        self._state.last_price_at[symbol] = ts
        working = [
            r
            for r in self._state.orders.values()
            if r.order.symbol == symbol and r.order.status is OrderStatus.ACCEPTED
        ]
        made: list[BrokerFill] = []
        for record in working:
            if record.order.status is not OrderStatus.ACCEPTED:  # its OCO sibling just filled
                continue
            fill_price = self._fill_price(record.order, px)
            if fill_price is not None:
                made.append(self._fill(record, fill_price, ts))
        self._save()
        return made

    def trigger_levels(self, symbol: str) -> list[Decimal]:
        """Limit and stop prices of the working orders on `symbol` (for a bar feed to visit)."""
        symbol = symbol.strip().upper()
        return sorted(
            {
                level
                for r in self._state.orders.values()
                if r.order.symbol == symbol and r.order.status is OrderStatus.ACCEPTED
                for level in (r.order.limit_price, r.order.stop_price)
                if level is not None
            }
        )

    def symbols_in_play(self) -> set[str]:
        """Symbols held or with a working order: those whose prices can change anything."""
        working = {r.order.symbol for r in self._state.orders.values() if r.order.is_open}
        return working | set(self._state.positions)

    def last_price(self, symbol: str) -> Decimal | None:
        """The newest price of `symbol` this broker was given, if any."""
        return self._state.last_prices.get(symbol.strip().upper())

    def last_price_at(self, symbol: str) -> datetime | None:
        """When the newest price of `symbol` was stamped: a bar feed resumes after it."""
        return self._state.last_price_at.get(symbol.strip().upper())

    # -- internals ---------------------------------------------------------------------------

    def _add(
        self,
        request: OrderRequest,
        client_order_id: str,
        status: OrderStatus,
        *,
        reserved: Decimal = Decimal(0),
        leg: OrderLeg = OrderLeg.ENTRY,
        parent_id: str | None = None,
    ) -> _Record:
        order_id = f"paper-{self._state.next_order_id:06d}"
        self._state.next_order_id += 1
        order = BrokerOrder(
            order_id=order_id,
            client_order_id=client_order_id,
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            type=request.type,
            time_in_force=request.time_in_force,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            status=status,
            submitted_at=self._clock(),
            leg=leg,
        )
        record = _Record(order=order, parent_id=parent_id, reserved=reserved)
        self._state.orders[order_id] = record
        return record

    def _fill_price(self, order: BrokerOrder, px: Decimal) -> Decimal | None:
        buy = order.side is Side.BUY
        if order.type is OrderType.MARKET:
            return self._slipped(px, order.side)
        if order.type is OrderType.LIMIT and order.limit_price is not None:
            limit = order.limit_price
            if buy and px <= limit:
                return min(px, limit)
            if not buy and px >= limit:
                return max(px, limit)
            return None
        if order.type is OrderType.STOP and order.stop_price is not None:
            triggered = px >= order.stop_price if buy else px <= order.stop_price
            return self._slipped(px, order.side) if triggered else None
        raise AssertionError(f"paper broker cannot work a {order.type} order")  # refused at submit

    def _fill(self, record: _Record, price: Decimal, ts: datetime) -> BrokerFill:
        order = record.order
        fill = BrokerFill(
            fill_id=f"paper-fill-{self._state.next_fill_id:06d}",
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            price=price,
            commission=order.qty * self.commission_per_share,
            ts=ts,
        )
        self._state.next_fill_id += 1
        self._state.fills.append(fill)
        self._book(fill)
        record.order = order.model_copy(
            update={"status": OrderStatus.FILLED, "filled_qty": order.qty, "avg_fill_price": price}
        )
        record.reserved = Decimal(0)
        if order.leg is OrderLeg.ENTRY:
            for child in self._children(record):
                if child.order.status is OrderStatus.NEW:
                    self._set_status(child, OrderStatus.ACCEPTED)
        elif record.parent_id is not None:  # one-cancels-other
            for sibling in self._children(self._state.orders[record.parent_id]):
                if sibling is not record and sibling.order.is_open:
                    self._set_status(sibling, OrderStatus.CANCELED)
        return fill

    def _book(self, fill: BrokerFill) -> None:
        """Cash and position after a fill: growing averages, reducing keeps, flipping resets."""
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        self._state.cash -= signed * fill.price + fill.commission
        held = self._state.positions.get(fill.symbol)
        old_qty = held.qty if held else Decimal(0)
        new_qty = old_qty + signed
        if new_qty == 0:
            self._state.positions.pop(fill.symbol, None)
            return
        if held is None or (old_qty > 0) == (signed > 0):
            avg = (old_qty * (held.avg_cost if held else 0) + signed * fill.price) / new_qty
        elif (old_qty > 0) == (new_qty > 0):
            avg = held.avg_cost
        else:
            avg = fill.price
        avg = avg.quantize(AVG_COST_QUANTUM, rounding=ROUND_HALF_EVEN)
        self._state.positions[fill.symbol] = BrokerPosition(
            symbol=fill.symbol, qty=new_qty, avg_cost=avg
        )

    def _reference_price(self, request: OrderRequest) -> Decimal:
        if request.type is OrderType.LIMIT and request.limit_price is not None:
            return request.limit_price
        if request.type is OrderType.STOP and request.stop_price is not None:
            return request.stop_price
        last = self._state.last_prices.get(request.symbol)
        if last is None:
            raise OrderRejectedError(
                f"{request.symbol}: no price yet to check a market order's buying power against"
            )
        return self._slipped(last, request.side)

    def _opening_qty(self, symbol: str, side: Side, qty: Decimal) -> Decimal:
        held = self._state.positions.get(symbol)
        if held is None or (held.qty > 0) == (side is Side.BUY):
            return qty
        return max(Decimal(0), qty - abs(held.qty))

    def _equity(self) -> Decimal:
        return self._state.cash + sum(
            (p.qty * self._mark(p) for p in self._state.positions.values()), Decimal(0)
        )

    def _buying_power(self) -> Decimal:
        gross = sum(
            (abs(p.qty) * self._mark(p) for p in self._state.positions.values()), Decimal(0)
        )
        reserved = sum(
            (r.reserved for r in self._state.orders.values() if r.order.is_open), Decimal(0)
        )
        return self._equity() - gross - reserved

    def _mark(self, position: BrokerPosition) -> Decimal:
        return self._state.last_prices.get(position.symbol, position.avg_cost)

    def _slipped(self, px: Decimal, side: Side) -> Decimal:
        move = px * self.slippage_bps / _BPS
        return px + move if side is Side.BUY else px - move

    def _children(self, record: _Record) -> list[_Record]:
        oid = record.order.order_id
        return [r for r in self._state.orders.values() if r.parent_id == oid]

    def _set_status(self, record: _Record, status: OrderStatus) -> None:
        record.order = record.order.model_copy(update={"status": status})
        if status not in {OrderStatus.NEW, OrderStatus.ACCEPTED}:
            record.reserved = Decimal(0)

    def _view(self, record: _Record) -> BrokerOrder:
        legs = [c.order for c in self._children(record)]
        return record.order.model_copy(update={"legs": legs}) if legs else record.order

    def _save(self) -> None:
        """Write the whole state to a temp file, flush it to disk, then rename it into place."""
        if self.state_path is None:
            return
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        with tmp.open("w") as out:
            out.write(self._state.model_dump_json())
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.state_path)


class _Record(BaseModel):
    """One order as the paper broker keeps it: the public view plus its parent and reservation."""

    order: BrokerOrder
    parent_id: str | None = None
    reserved: Decimal = Decimal(0)  # buying power held while open


class _State(BaseModel):
    """Everything a restart must not lose."""

    cash: Decimal
    next_order_id: int = 1
    next_fill_id: int = 1
    orders: dict[str, _Record] = Field(default_factory=dict)  # in submission order
    fills: list[BrokerFill] = Field(default_factory=list)
    positions: dict[str, BrokerPosition] = Field(default_factory=dict)
    client_order_ids: set[str] = Field(default_factory=set)
    last_prices: dict[str, Decimal] = Field(default_factory=dict)
    last_price_at: dict[str, datetime] = Field(default_factory=dict)  # feeds resume from here


def _client_ids(request: OrderRequest) -> list[str]:
    """The entry's client_order_id, then the take-profit and stop-loss legs' derived ones."""
    cid = request.client_order_id
    return [cid, f"{cid}-tp", f"{cid}-sl"] if request.is_bracket else [cid]
