"""The Alpaca broker through alpaca-py's real TradingClient, against a loopback fake Alpaca.

It passes the same contract suite as the paper broker, plus the failures only
a remote broker has: a refused order, a duplicate client order id, and an
order accepted whose answer was lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from models.broker import OrderRequest
from models.enums import OrderStatus, OrderType, Side
from services.brokers import (
    Broker,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    OrderRejectedError,
)
from services.brokers.alpaca import AlpacaBroker
from tests.broker_contract import BrokerContract
from tests.fake_alpaca_rest import (
    AcceptThenTimeout,
    FakeAlpacaRest,
    Reject,
    ServerError,
    fake_alpaca_rest,
    trading_client,
)


@pytest.fixture
def alpaca() -> Iterator[FakeAlpacaRest]:
    with fake_alpaca_rest(cash=10_000) as server:
        yield server


class TestAlpacaBrokerContract(BrokerContract):
    @pytest.fixture
    def broker(self, alpaca: FakeAlpacaRest) -> Broker:
        self.server = alpaca
        return AlpacaBroker(trading_client(alpaca, timeout_s=1.0))

    async def drive(self, broker: Broker, symbol: str, price: Decimal) -> None:
        """Alpaca fills; the fake fills open market entries for `symbol` at `price`."""
        self.server.set_price(symbol, price)
        for order in await broker.list_orders(open_only=True):
            if order.symbol == symbol and order.type is OrderType.MARKET and order.is_open:
                self.server.fill(order.order_id, price)

    async def test_order_beyond_buying_power_is_rejected_and_leaves_no_order(
        self, broker: Broker
    ) -> None:
        # The fake does not price buying power: it answers as Alpaca does when it is short.
        self.server.enqueue(Reject(403, "insufficient buying power"))
        await super().test_order_beyond_buying_power_is_rejected_and_leaves_no_order(broker)


def _request(cid: str) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol="AAPL",
        side=Side.BUY,
        qty=Decimal(3),
        type=OrderType.LIMIT,
        limit_price=Decimal("150"),
        take_profit=Decimal("160"),
        stop_loss=Decimal("145"),
    )


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_lost_answer_raises_unavailable_and_the_order_is_found_by_its_id(
    alpaca: FakeAlpacaRest, anyio_backend: str
) -> None:
    broker = AlpacaBroker(trading_client(alpaca, timeout_s=0.5))
    alpaca.enqueue(AcceptThenTimeout(2.0))
    with pytest.raises(BrokerUnavailableError):
        await broker.submit(_request("lost-1"))
    found = await broker.get_by_client_order_id("lost-1")
    assert found is not None  # it exists: resubmitting would have made a second order
    assert found.status in (OrderStatus.NEW, OrderStatus.ACCEPTED)
    assert len(found.legs) == 2
    with pytest.raises(DuplicateClientOrderIdError):
        await broker.submit(_request("lost-1"))
    assert len(alpaca.submits("lost-1")) == 2  # the second reached Alpaca and was refused


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_refusals_and_outages_map_to_the_protocols_errors(
    alpaca: FakeAlpacaRest, anyio_backend: str
) -> None:
    broker = AlpacaBroker(trading_client(alpaca, timeout_s=1.0))
    alpaca.enqueue(Reject(422, "qty must be > 0"))
    with pytest.raises(OrderRejectedError, match="422"):
        await broker.submit(_request("bad-1"))
    alpaca.enqueue(ServerError(503))
    with pytest.raises(BrokerUnavailableError, match="503"):
        await broker.submit(_request("down-1"))
    assert await broker.get_by_client_order_id("bad-1") is None
    assert await broker.get_by_client_order_id("never-sent") is None


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_filled_bracket_shows_as_a_fill_a_position_and_active_exits(
    alpaca: FakeAlpacaRest, anyio_backend: str
) -> None:
    broker = AlpacaBroker(trading_client(alpaca, timeout_s=1.0))
    placed = await broker.submit(_request("b-1"))
    alpaca.fill(placed.order_id, "149.50")
    order = await broker.get_by_client_order_id("b-1")
    assert order is not None
    assert order.status is OrderStatus.FILLED
    assert order.avg_fill_price == Decimal("149.50")
    assert all(leg.is_open for leg in order.legs)
    [fill] = [f for f in await broker.fills() if f.client_order_id == "b-1"]
    assert (fill.qty, fill.price) == (Decimal(3), Decimal("149.50"))
    [position] = await broker.positions()
    assert (position.symbol, position.qty) == ("AAPL", Decimal(3))
    account = await broker.account()
    assert account.cash == Decimal(10_000) - Decimal(3) * Decimal("149.50")
