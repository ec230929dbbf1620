"""PaperBroker: the Broker contract, then fills on scripted price paths, costs and restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.broker import OrderRequest
from models.enums import OrderLeg, OrderStatus, OrderType, Side
from services.brokers import DuplicateClientOrderIdError, OrderRejectedError, PaperBroker
from tests.broker_contract import BrokerContract

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 1, 6, 14, 30, tzinfo=UTC)


class TestPaperBrokerContract(BrokerContract):
    @pytest.fixture
    def broker(self) -> PaperBroker:
        return PaperBroker(Decimal(10_000))

    async def drive(self, broker: PaperBroker, symbol: str, price: Decimal) -> None:  # type: ignore[override]
        broker.on_price(symbol, price, T0)


def _walk(broker: PaperBroker, symbol: str, *prices: str | float) -> None:
    """Feed a price path, one minute apart."""
    for n, price in enumerate(prices):
        broker.on_price(symbol, Decimal(price) if isinstance(price, str) else price, _ts(n))


def _ts(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def _bracket(cid: str = "b1", *, side: Side = Side.BUY) -> OrderRequest:
    tp, sl = ("110", "95") if side is Side.BUY else ("90", "105")
    return OrderRequest(
        client_order_id=cid,
        symbol="AAPL",
        side=side,
        qty=Decimal(10),
        take_profit=Decimal(tp),
        stop_loss=Decimal(sl),
    )


def _market(cid: str, side: Side, qty: int, symbol: str = "AAPL") -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol=symbol, side=side, qty=Decimal(qty))


@pytest.fixture
def paper() -> PaperBroker:
    broker = PaperBroker(Decimal(100_000))
    broker.on_price("AAPL", Decimal(100), T0 - timedelta(minutes=1))
    return broker


async def test_take_profit_fills_and_cancels_the_stop(paper: PaperBroker) -> None:
    await paper.submit(_bracket())
    _walk(paper, "AAPL", "100", "105", "111")
    order = await paper.get_by_client_order_id("b1")
    assert order is not None
    assert order.status is OrderStatus.FILLED
    legs = {leg.leg: leg for leg in order.legs}
    assert legs[OrderLeg.TAKE_PROFIT].status is OrderStatus.FILLED
    assert legs[OrderLeg.TAKE_PROFIT].avg_fill_price == Decimal(111)  # better than the limit
    assert legs[OrderLeg.STOP_LOSS].status is OrderStatus.CANCELED
    assert await paper.positions() == []
    assert (await paper.account()).cash == Decimal(100_000) + 10 * (111 - 100)
    assert await paper.list_orders(open_only=True) == []


async def test_stop_loss_fills_and_cancels_the_take_profit(paper: PaperBroker) -> None:
    await paper.submit(_bracket())
    _walk(paper, "AAPL", "100", "97", "95")
    order = await paper.get_by_client_order_id("b1")
    assert order is not None
    legs = {leg.leg: leg for leg in order.legs}
    assert legs[OrderLeg.STOP_LOSS].avg_fill_price == Decimal(95)
    assert legs[OrderLeg.TAKE_PROFIT].status is OrderStatus.CANCELED


async def test_gap_through_the_stop_fills_at_the_gapped_price(paper: PaperBroker) -> None:
    await paper.submit(_bracket())
    _walk(paper, "AAPL", "100", "88.50")
    sl = await paper.get_by_client_order_id("b1-sl")
    assert sl is not None
    assert sl.status is OrderStatus.FILLED
    assert sl.avg_fill_price == Decimal("88.50")
    assert (await paper.account()).cash == Decimal(100_000) - 10 * Decimal("11.50")


async def test_exits_wait_for_the_entry_fill(paper: PaperBroker) -> None:
    await paper.submit(_bracket())
    [entry_fill] = paper.on_price("AAPL", Decimal(120), _ts(0))  # would cross the take-profit
    assert entry_fill.client_order_id == "b1"
    tp = await paper.get_by_client_order_id("b1-tp")
    assert tp is not None
    assert tp.status is OrderStatus.ACCEPTED  # working from the next price on


async def test_limit_entry_does_not_fill_until_the_price_crosses(paper: PaperBroker) -> None:
    request = OrderRequest(
        client_order_id="l1",
        symbol="AAPL",
        side=Side.BUY,
        qty=Decimal(5),
        type=OrderType.LIMIT,
        limit_price=Decimal(95),
    )
    await paper.submit(request)
    _walk(paper, "AAPL", "99", "96", "95.01")
    assert await paper.fills() == []
    _walk(paper, "AAPL", "94")
    [fill] = await paper.fills()
    assert fill.price == Decimal(94)  # the better of limit and price


async def test_slippage_and_commission_cost_the_trader() -> None:
    broker = PaperBroker(
        Decimal(10_000), slippage_bps=Decimal(10), commission_per_share=Decimal("0.01")
    )
    broker.on_price("AAPL", 100.0, T0)  # a float at the edge becomes Decimal("100.0")
    await broker.submit(_market("m1", Side.BUY, 10))
    await broker.submit(_market("m2", Side.SELL, 4))
    [buy] = broker.on_price("AAPL", 100.0, _ts(1))[:1]
    fills = await broker.fills()
    assert [(f.price, f.commission) for f in fills] == [
        (Decimal("100.1"), Decimal("0.10")),
        (Decimal("99.9"), Decimal("0.04")),
    ]
    assert buy.price == Decimal("100.1")
    expected_cash = Decimal(10_000) - Decimal("1001.0") - Decimal("0.10") + Decimal("399.6")
    assert (await broker.account()).cash == expected_cash - Decimal("0.04")
    [position] = await broker.positions()
    assert (position.qty, position.avg_cost) == (Decimal(6), Decimal("100.1"))


async def test_short_then_flip_resets_average_cost(paper: PaperBroker) -> None:
    await paper.submit(_market("s1", Side.SELL, 10))
    _walk(paper, "AAPL", "100")
    await paper.submit(_market("s2", Side.SELL, 10))
    _walk(paper, "AAPL", "110")
    [short] = await paper.positions()
    assert (short.qty, short.avg_cost) == (Decimal(-20), Decimal(105))  # growing averages

    await paper.submit(_market("c1", Side.BUY, 5))
    _walk(paper, "AAPL", "90")
    [reduced] = await paper.positions()
    assert (reduced.qty, reduced.avg_cost) == (Decimal(-15), Decimal(105))  # reducing keeps

    await paper.submit(_market("f1", Side.BUY, 25))
    _walk(paper, "AAPL", "80")
    [flipped] = await paper.positions()
    assert (flipped.qty, flipped.avg_cost) == (Decimal(10), Decimal(80))  # flipping resets
    expected = Decimal(100_000) + 1000 + 1100 - 450 - 25 * 80
    assert (await paper.account()).cash == expected


async def test_market_order_without_a_price_is_rejected() -> None:
    broker = PaperBroker(Decimal(10_000))
    with pytest.raises(OrderRejectedError, match="no price yet"):
        await broker.submit(_market("m1", Side.BUY, 1))
    assert await broker.list_orders() == []


async def test_rejected_client_order_id_may_be_resubmitted() -> None:
    broker = PaperBroker(Decimal(500))
    broker.on_price("AAPL", Decimal(100), T0)
    with pytest.raises(OrderRejectedError):
        await broker.submit(_market("m1", Side.BUY, 10))
    placed = await broker.submit(_market("m1", Side.BUY, 5))
    assert placed.status is OrderStatus.ACCEPTED


async def test_open_orders_reserve_buying_power(paper: PaperBroker) -> None:
    await paper.submit(_market("m1", Side.BUY, 600))
    with pytest.raises(OrderRejectedError, match="insufficient buying power"):
        await paper.submit(_market("m2", Side.BUY, 600))


async def test_restart_from_state_path_keeps_everything(tmp_path: Path) -> None:
    state = tmp_path / "paper.json"
    first = PaperBroker(Decimal(100_000), state_path=state)
    first.on_price("AAPL", Decimal(100), T0)
    await first.submit(_market("m1", Side.BUY, 10))
    first.on_price("AAPL", Decimal(101), _ts(1))
    await first.submit(_bracket("b1"))

    again = PaperBroker(Decimal(1), state_path=state)  # starting cash is ignored on reload
    assert await again.account() == await first.account()
    assert await again.positions() == await first.positions()
    assert await again.list_orders() == await first.list_orders()
    assert await again.fills() == await first.fills()
    with pytest.raises(DuplicateClientOrderIdError):
        await again.submit(_market("m1", Side.BUY, 1))
    with pytest.raises(DuplicateClientOrderIdError):
        await again.submit(_market("b1-tp", Side.BUY, 1))
    placed = await again.submit(_market("m3", Side.BUY, 1))
    assert placed.order_id == "paper-000005"  # ids continue after the bracket's three
    assert not (tmp_path / "paper.json.tmp").exists()


def test_order_request_validates_prices_by_type() -> None:
    with pytest.raises(ValidationError, match="needs limit_price"):
        OrderRequest(
            client_order_id="x", symbol="AAPL", side=Side.BUY, qty=Decimal(1), type="limit"
        )
    with pytest.raises(ValidationError, match="takes no stop_price"):
        OrderRequest(
            client_order_id="x",
            symbol="AAPL",
            side=Side.BUY,
            qty=Decimal(1),
            stop_price=Decimal(1),
        )
    with pytest.raises(ValidationError, match="float"):
        OrderRequest(client_order_id="x", symbol="AAPL", side=Side.BUY, qty=1.5)


def test_order_request_refuses_exits_on_the_wrong_side() -> None:
    with pytest.raises(ValidationError, match="stop_loss 95 < entry 100 < take_profit 90"):
        OrderRequest(
            client_order_id="x",
            symbol="AAPL",
            side=Side.BUY,
            qty=Decimal(1),
            type=OrderType.LIMIT,
            limit_price=Decimal(100),
            take_profit=Decimal(90),
            stop_loss=Decimal(95),
        )
    with pytest.raises(ValidationError, match="take_profit 105 must be below stop_loss 100"):
        OrderRequest(
            client_order_id="x",
            symbol="AAPL",
            side=Side.SELL,
            qty=Decimal(1),
            take_profit=Decimal(105),
            stop_loss=Decimal(100),
        )
    assert _bracket(side=Side.SELL).is_bracket


async def test_an_account_short_of_buying_power_may_still_close_what_it_holds() -> None:
    """A market order that fills above the price it was checked at (a gap up) can leave
    cash, so buying power, below zero (the council backtest's 2018 found one); an order
    that only reduces a position needs no buying power, as the pre-trade checks say."""
    broker = PaperBroker(Decimal(10_000), commission_per_share=Decimal("0.01"))
    broker.on_price("AAPL", Decimal(100), T0)
    await broker.submit(_market("m1", Side.BUY, 99))  # checked at 100
    broker.on_price("AAPL", Decimal(110), _ts(1))  # filled at 110
    assert (await broker.account()).buying_power < 0
    with pytest.raises(OrderRejectedError, match="insufficient buying power"):
        await broker.submit(_market("m2", Side.BUY, 1))  # growing it is still refused
    closing = await broker.submit(_market("m3", Side.SELL, 50))
    assert closing.status is OrderStatus.ACCEPTED
    fills = broker.on_price("AAPL", Decimal(111), _ts(2))
    assert [(f.client_order_id, f.qty) for f in fills] == [("m3", Decimal(50))]
    assert (await broker.account()).buying_power > 0
