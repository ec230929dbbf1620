"""The Broker contract as a reusable test suite: subclass `BrokerContract` per adapter.

A subclass provides the `broker` fixture (a fresh account with enough cash for
a few hundred dollars of SPY, no orders, no positions) and `drive`, which makes
the broker see a new price for a symbol (the paper broker's `on_price`; a fake
Alpaca server's scripted quote). Async tests run on anyio's pytest plugin.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from models.broker import OrderRequest
from models.enums import OrderLeg, OrderStatus, OrderType, Side
from services.brokers import (
    Broker,
    DuplicateClientOrderIdError,
    OrderRejectedError,
)

SYMBOL = "SPY"


def _cid() -> str:
    return f"contract-{uuid.uuid4().hex[:16]}"


def _limit_buy(cid: str, qty: str = "1", limit: str = "90") -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol=SYMBOL,
        side=Side.BUY,
        qty=Decimal(qty),
        type=OrderType.LIMIT,
        limit_price=Decimal(limit),
    )


class BrokerContract:
    """What every `Broker` must do. Not collected by itself (no `Test` prefix)."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def broker(self) -> Broker:
        raise NotImplementedError("a BrokerContract subclass provides the broker fixture")

    async def drive(self, broker: Broker, symbol: str, price: Decimal) -> None:
        """Make `broker` see `price` for `symbol` now, and work its orders against it."""
        raise NotImplementedError

    async def test_submit_then_get_by_client_order_id_returns_the_same_order(
        self, broker: Broker
    ) -> None:
        cid = _cid()
        placed = await broker.submit(_limit_buy(cid))
        found = await broker.get_by_client_order_id(cid)
        assert found is not None
        assert found.order_id == placed.order_id
        assert (found.client_order_id, found.symbol, found.side) == (cid, SYMBOL, Side.BUY)
        assert (found.qty, found.type, found.limit_price) == (
            Decimal(1),
            OrderType.LIMIT,
            Decimal(90),
        )
        assert found.is_open
        assert await broker.get_by_client_order_id(_cid()) is None

    async def test_duplicate_client_order_id_raises_and_creates_nothing(
        self, broker: Broker
    ) -> None:
        cid = _cid()
        await broker.submit(_limit_buy(cid))
        with pytest.raises(DuplicateClientOrderIdError):
            await broker.submit(_limit_buy(cid, qty="2"))
        orders = await broker.list_orders()
        assert [o.client_order_id for o in orders] == [cid]
        assert orders[0].qty == Decimal(1)

    async def test_cancel_of_an_open_order_cancels_it(self, broker: Broker) -> None:
        placed = await broker.submit(_limit_buy(_cid()))
        canceled = await broker.cancel(placed.order_id)
        assert canceled.status is OrderStatus.CANCELED
        assert not canceled.is_open
        again = await broker.cancel(placed.order_id)  # a retried cancel is harmless
        assert again.status is OrderStatus.CANCELED

    async def test_list_orders_open_only_leaves_out_canceled_orders(self, broker: Broker) -> None:
        kept = await broker.submit(_limit_buy(_cid()))
        dropped = await broker.submit(_limit_buy(_cid()))
        await broker.cancel(dropped.order_id)
        assert [o.order_id for o in await broker.list_orders(open_only=True)] == [kept.order_id]
        assert {o.order_id for o in await broker.list_orders()} == {
            kept.order_id,
            dropped.order_id,
        }

    async def test_market_buy_fills_into_a_position_and_out_of_cash(self, broker: Broker) -> None:
        await self.drive(broker, SYMBOL, Decimal(100))
        cash_before = (await broker.account()).cash
        cid = _cid()
        await broker.submit(
            OrderRequest(client_order_id=cid, symbol=SYMBOL, side=Side.BUY, qty=Decimal(2))
        )
        await self.drive(broker, SYMBOL, Decimal(100))

        order = await broker.get_by_client_order_id(cid)
        assert order is not None
        assert order.status is OrderStatus.FILLED
        assert order.filled_qty == Decimal(2)
        [fill] = [f for f in await broker.fills() if f.client_order_id == cid]
        assert fill.qty == Decimal(2)
        assert [(p.symbol, p.qty) for p in await broker.positions()] == [(SYMBOL, Decimal(2))]
        cash_after = (await broker.account()).cash
        assert cash_after == cash_before - fill.qty * fill.price - fill.commission

    async def test_order_beyond_buying_power_is_rejected_and_leaves_no_order(
        self, broker: Broker
    ) -> None:
        await self.drive(broker, SYMBOL, Decimal(100))
        buying_power = (await broker.account()).buying_power
        too_many = (buying_power / Decimal(100) * 2).to_integral_value() + 1
        cid = _cid()
        with pytest.raises(OrderRejectedError) as rejected:
            await broker.submit(
                OrderRequest(client_order_id=cid, symbol=SYMBOL, side=Side.BUY, qty=too_many)
            )
        assert rejected.value.reason
        assert await broker.get_by_client_order_id(cid) is None
        assert await broker.list_orders() == []

    async def test_bracket_submit_returns_its_two_exit_legs(self, broker: Broker) -> None:
        cid = _cid()
        request = OrderRequest(
            client_order_id=cid,
            symbol=SYMBOL,
            side=Side.BUY,
            qty=Decimal(1),
            type=OrderType.LIMIT,
            limit_price=Decimal(90),
            take_profit=Decimal(110),
            stop_loss=Decimal(80),
        )
        placed = await broker.submit(request)
        legs = {leg.leg: leg for leg in placed.legs}
        assert set(legs) == {OrderLeg.TAKE_PROFIT, OrderLeg.STOP_LOSS}
        take_profit, stop_loss = legs[OrderLeg.TAKE_PROFIT], legs[OrderLeg.STOP_LOSS]
        assert (take_profit.side, take_profit.type, take_profit.limit_price) == (
            Side.SELL,
            OrderType.LIMIT,
            Decimal(110),
        )
        assert (stop_loss.side, stop_loss.type, stop_loss.stop_price) == (
            Side.SELL,
            OrderType.STOP,
            Decimal(80),
        )
        assert all(leg.qty == Decimal(1) and leg.is_open for leg in placed.legs)
        found = await broker.get_by_client_order_id(cid)
        assert found is not None
        assert len(found.legs) == 2
