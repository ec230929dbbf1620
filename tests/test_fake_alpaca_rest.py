"""alpaca-py's real TradingClient against the loopback fake: shapes parse, errors raise."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Clock, Order, Position, TradeAccount
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from tests.fake_alpaca_rest import (
    AcceptThenTimeout,
    FakeAlpacaRest,
    Reject,
    ServerError,
    Slow,
    fake_alpaca_rest,
    trading_client,
)

CLIENT_TIMEOUT_S = 0.3


@pytest.fixture(scope="module")
def module_server() -> Iterator[FakeAlpacaRest]:
    with fake_alpaca_rest() as server:
        yield server


@pytest.fixture
def server(module_server: FakeAlpacaRest) -> FakeAlpacaRest:
    module_server.reset()
    return module_server


@pytest.fixture
def client(server: FakeAlpacaRest) -> TradingClient:
    return trading_client(server, timeout_s=CLIENT_TIMEOUT_S)


def bracket(client_order_id: str, qty: int = 10) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="AAPL",
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        order_class=OrderClass.BRACKET,
        take_profit=TakeProfitRequest(limit_price=110.0),
        stop_loss=StopLossRequest(stop_price=95.0),
        client_order_id=client_order_id,
    )


def market(client_order_id: str, qty: int = 5) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="MSFT",
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        client_order_id=client_order_id,
    )


def submit(client: TradingClient, request: MarketOrderRequest | LimitOrderRequest) -> Order:
    order = client.submit_order(request)
    assert isinstance(order, Order)
    return order


def by_client_id(client: TradingClient, client_order_id: str) -> Order:
    order = client.get_order_by_client_id(client_order_id)
    assert isinstance(order, Order)
    return order


def test_bracket_order_keeps_our_client_order_id_and_reads_back_with_two_legs(server, client):
    submitted = submit(client, bracket("intent-1"))

    fetched = by_client_id(client, "intent-1")

    assert fetched.id == submitted.id
    assert fetched.client_order_id == "intent-1"
    assert fetched.order_class == OrderClass.BRACKET
    assert fetched.status == OrderStatus.NEW
    assert fetched.legs is not None
    assert [(leg.type, leg.side, leg.status) for leg in fetched.legs] == [
        ("limit", OrderSide.SELL, OrderStatus.HELD),
        ("stop", OrderSide.SELL, OrderStatus.HELD),
    ]
    assert fetched.legs[0].limit_price == "110"
    assert fetched.legs[1].stop_price == "95"
    assert server.submits("intent-1")[0].body == {
        "symbol": "AAPL",
        "qty": 10.0,
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "order_class": "bracket",
        "take_profit": {"limit_price": 110.0},
        "stop_loss": {"stop_price": 95.0},
        "client_order_id": "intent-1",
    }


def test_duplicate_client_order_id_raises_api_error_with_status_code_422(server, client):
    submit(client, market("intent-dup"))

    with pytest.raises(APIError) as caught:
        submit(client, market("intent-dup"))

    assert caught.value.status_code == 422
    assert caught.value.code == 40010001
    assert caught.value.message == "client_order_id must be unique"
    assert len(server.submits("intent-dup")) == 2


def test_insufficient_buying_power_raises_api_error_403_and_creates_nothing(server, client):
    server.enqueue(Reject(403, "insufficient buying power"))

    with pytest.raises(APIError) as caught:
        submit(client, market("intent-poor"))

    assert caught.value.status_code == 403
    assert caught.value.message == "insufficient buying power"
    with pytest.raises(APIError) as missing:
        by_client_id(client, "intent-poor")
    assert missing.value.status_code == 404


def test_accept_then_timeout_raises_read_timeout_yet_the_order_exists(server, client):
    server.enqueue(AcceptThenTimeout(5.0))

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        submit(client, market("intent-lost-answer"))

    assert time.monotonic() - started < 2.0
    assert by_client_id(client, "intent-lost-answer").status == OrderStatus.NEW
    assert len(server.submits("intent-lost-answer")) == 1  # alpaca-py did not resend it


def test_slow_past_the_timeout_drops_the_order_unprocessed(server, client):
    server.enqueue(Slow(5.0))

    with pytest.raises(requests.exceptions.Timeout):
        submit(client, market("intent-lost-request"))

    time.sleep(0.1)  # the server notices the hang-up within its 20 ms poll
    with pytest.raises(APIError) as missing:
        by_client_id(client, "intent-lost-request")
    assert missing.value.status_code == 404


def test_slow_within_the_timeout_answers_normally(server, client):
    server.enqueue(Slow(0.05))

    assert submit(client, market("intent-slow")).client_order_id == "intent-slow"


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_raise_api_error_once_without_client_retries(server, client, status):
    server.enqueue(ServerError(status))

    with pytest.raises(APIError) as caught:
        submit(client, market(f"intent-{status}"))

    assert caught.value.status_code == status
    assert len(server.submits()) == 1
    assert server.pending == 0


def test_behaviours_can_be_scripted_for_lookups_too(server, client):
    submit(client, market("intent-lookup"))
    server.enqueue(ServerError(503), on="GET /v2/orders:by_client_order_id")

    with pytest.raises(APIError):
        by_client_id(client, "intent-lookup")
    assert by_client_id(client, "intent-lookup").client_order_id == "intent-lookup"


def test_enqueue_refuses_an_unknown_route(server):
    with pytest.raises(ValueError, match="unknown route"):
        server.enqueue(Reject(), on="POST /v2/order")


def test_cancel_answers_204_then_422_once_the_order_is_done(server, client):
    order = submit(client, bracket("intent-cancel"))

    client.cancel_order_by_id(order.id)

    fetched = by_client_id(client, "intent-cancel")
    assert fetched.status == OrderStatus.CANCELED
    assert fetched.legs is not None
    assert {leg.status for leg in fetched.legs} == {OrderStatus.CANCELED}
    with pytest.raises(APIError) as caught:
        client.cancel_order_by_id(order.id)
    assert caught.value.status_code == 422


def test_cancelling_a_filled_order_is_a_422(server, client):
    order = submit(client, market("intent-filled"))
    server.fill("intent-filled", 400)

    with pytest.raises(APIError) as caught:
        client.cancel_order_by_id(order.id)

    assert caught.value.status_code == 422
    assert caught.value.message == 'order is already in "filled" state'


def test_fill_moves_cash_and_positions_and_activates_bracket_legs(server, client):
    order = submit(client, bracket("intent-fill"))

    server.fill("intent-fill", 100, qty=4)
    partial = client.get_order_by_id(order.id)
    server.fill(str(order.id), 102)
    server.set_price("AAPL", 105)

    assert isinstance(partial, Order)
    assert partial.status == OrderStatus.PARTIALLY_FILLED
    filled = by_client_id(client, "intent-fill")
    assert filled.status == OrderStatus.FILLED
    assert filled.filled_qty == "10"
    assert Decimal(str(filled.filled_avg_price)) == Decimal("101.2")
    assert filled.legs is not None
    assert {leg.status for leg in filled.legs} == {OrderStatus.NEW}
    positions = client.get_all_positions()
    assert isinstance(positions, list)
    assert len(positions) == 1
    assert isinstance(positions[0], Position)
    assert (positions[0].symbol, positions[0].qty, positions[0].avg_entry_price) == (
        "AAPL",
        "10",
        "101.2",
    )
    assert positions[0].market_value == "1050"
    account = client.get_account()
    assert isinstance(account, TradeAccount)
    assert account.cash == "98988"  # 100_000 - 10 * 101.2
    assert account.equity == "100038"


def test_a_filled_take_profit_cancels_the_stop_loss_and_closes_the_position(server, client):
    order = submit(client, bracket("intent-exit"))
    server.fill("intent-exit", 100)
    legs = server.order(str(order.id))["legs"]

    server.fill(legs[0]["id"], 110)

    after = by_client_id(client, "intent-exit")
    assert after.legs is not None
    assert [leg.status for leg in after.legs] == [OrderStatus.FILLED, OrderStatus.CANCELED]
    assert client.get_all_positions() == []
    assert server.order(str(order.id))["status"] == "filled"


def test_list_orders_filters_by_status_and_nests_legs_on_request(server, client):
    submit(client, bracket("intent-open"))
    submit(client, market("intent-closed"))
    server.fill("intent-closed", 300)

    nested = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
    flat = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))

    assert [o.client_order_id for o in nested] == ["intent-open"]
    assert len(nested[0].legs or []) == 2
    assert len(flat) == 4  # the two legs listed as orders of their own
    assert [o.client_order_id for o in closed] == ["intent-closed"]


def test_account_positions_and_clock_parse_into_alpaca_models(server, client):
    server.market_open = False

    account = client.get_account()
    clock = client.get_clock()

    assert isinstance(account, TradeAccount)
    assert account.status == "ACTIVE"
    assert (account.cash, account.buying_power, account.equity) == ("100000",) * 3
    assert client.get_all_positions() == []
    assert isinstance(clock, Clock)
    assert clock.is_open is False
    assert clock.next_open > clock.timestamp


def test_requests_are_recorded_with_method_path_query_and_auth_headers(server, client):
    submit(client, market("intent-rec"))
    by_client_id(client, "intent-rec")

    post, get = server.requests
    assert (post.method, post.path, post.client_order_id) == ("POST", "/v2/orders", "intent-rec")
    assert (get.method, get.path, get.query) == (
        "GET",
        "/v2/orders:by_client_order_id",
        {"client_order_id": "intent-rec"},
    )
    assert get.body is None
    assert post.headers["apca-api-key-id"] == "fake-key"
    assert post.headers["apca-api-secret-key"] == "fake-secret"
