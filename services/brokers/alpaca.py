"""The `Broker` protocol on Alpaca, through alpaca-py's `TradingClient` (paper by default).

Every order carries our `client_order_id`; Alpaca refuses a second order with
the same id (422), which this adapter reports as `DuplicateClientOrderIdError`
— the broker's half of exactly-once. A request whose answer never came back
(timeout, connection reset, 5xx) raises `BrokerUnavailableError`: the order
may or may not exist, and the caller must ask `get_by_client_order_id` before
trying again, never resubmit blindly.

alpaca-py's client is synchronous (requests), so each call runs in a worker
thread. Its own retries are for 429/504 only; ours are the OMS's business.

Not here: streaming trade updates (fills are read from filled orders: one
fill per order at its average price, which is what the OMS records), order
replacement, crypto and options.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, QueryOrderStatus
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import TimeInForce as AlpacaTIF
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)
from requests.adapters import HTTPAdapter

from models.broker import BrokerAccount, BrokerFill, BrokerOrder, BrokerPosition, OrderRequest
from models.enums import OrderLeg, OrderStatus, OrderType, Side, TimeInForce
from services.brokers.protocol import (
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    OrderNotCancelableError,
    OrderRejectedError,
    UnknownOrderError,
)

T = TypeVar("T")


class TimeoutAdapter(HTTPAdapter):
    """requests has no session-wide timeout; this gives every request one unless it set its own."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout_s
        return super().send(request, *args, **kwargs)


def trading_client(
    api_key: str, secret_key: str, *, paper: bool, url: str | None, timeout_s: float
) -> TradingClient:
    """alpaca-py's client with a request timeout and without its own retries."""
    client = TradingClient(api_key, secret_key, paper=paper, url_override=url)
    client._retry = 0  # TradingClient cannot be told; RESTClient ignores retry_attempts=0
    adapter = TimeoutAdapter(timeout_s)
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)
    return client


# Alpaca's many order states, in ours. Pending states are "accepted, not yet working".
_STATUS = {
    "new": OrderStatus.NEW,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.SUBMITTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.EXPIRED,
    "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "replaced": OrderStatus.CANCELED,
    "pending_replace": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.SUBMITTED,
    "stopped": OrderStatus.ACCEPTED,
    "rejected": OrderStatus.REJECTED,
    "suspended": OrderStatus.REJECTED,
    "calculated": OrderStatus.ACCEPTED,
}


class AlpacaBroker:
    name = "alpaca"

    def __init__(self, client: TradingClient) -> None:
        self._client = client

    @classmethod
    def connect(
        cls,
        api_key: str,
        secret_key: str,
        *,
        paper: bool = True,
        url: str | None = None,
        timeout_s: float = 10.0,
    ) -> AlpacaBroker:
        """A broker on a client that gives up on a silent server after `timeout_s`.

        alpaca-py sets no timeout of its own, so a hung connection would hang
        the execution task; and its retries (429/504 only) are switched off
        because a retried submit is the OMS's decision, made after asking the
        broker what it already has.
        """
        return cls(trading_client(api_key, secret_key, paper=paper, url=url, timeout_s=timeout_s))

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        order = await self._call(self._client.submit_order, _order_request(request))
        return _order(order)

    async def cancel(self, order_id: str) -> BrokerOrder:
        """Cancel; a repeated cancel returns the canceled order (Alpaca answers 422 to it)."""
        try:
            await self._call(self._client.cancel_order_by_id, order_id)
        except _NotFoundError as exc:
            raise UnknownOrderError(f"Alpaca has no order {order_id}") from exc
        except OrderRejectedError:
            current = _order(await self._call(self._client.get_order_by_id, order_id))
            if current.status is OrderStatus.CANCELED:
                return current
            if not current.is_open and not any(leg.is_open for leg in current.legs):
                raise OrderNotCancelableError(
                    f"order {order_id} is {current.status}; nothing of it is open"
                ) from None
            raise
        return _order(await self._call(self._client.get_order_by_id, order_id))

    async def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        try:
            order = await self._call(self._client.get_order_by_client_id, client_order_id)
        except _NotFoundError:
            return None
        return _order(order)

    async def list_orders(self, open_only: bool = False) -> list[BrokerOrder]:
        status = QueryOrderStatus.OPEN if open_only else QueryOrderStatus.ALL
        request = GetOrdersRequest(status=status, nested=True, limit=500)
        orders = await self._call(self._client.get_orders, request)
        return [_order(o) for o in orders if isinstance(o, AlpacaOrder)]

    async def fills(self, since: datetime | None = None) -> list[BrokerFill]:
        fills = []
        for order in await self.list_orders():
            for o in (order, *order.legs):
                if o.filled_qty > 0 and o.avg_fill_price:
                    ts = o.submitted_at
                    if since is None or ts >= since:
                        fills.append(
                            BrokerFill(
                                fill_id=f"{o.order_id}-fill",
                                order_id=o.order_id,
                                client_order_id=o.client_order_id,
                                symbol=o.symbol,
                                side=o.side,
                                qty=o.filled_qty,
                                price=o.avg_fill_price,
                                ts=ts,
                            )
                        )
        return fills

    async def positions(self) -> list[BrokerPosition]:
        rows: list[Any] = list(await self._call(self._client.get_all_positions))
        return [
            BrokerPosition(
                symbol=p.symbol,
                qty=_dec(p.qty) * (-1 if str(p.side).lower().endswith("short") else 1),
                avg_cost=_dec(p.avg_entry_price),
            )
            for p in rows
            if not isinstance(p, dict | str)
        ]

    async def account(self) -> BrokerAccount:
        a: Any = await self._call(self._client.get_account)
        return BrokerAccount(
            cash=_dec(a.cash), equity=_dec(a.equity), buying_power=_dec(a.buying_power)
        )

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except APIError as exc:
            raise _translate(exc) from exc
        except OSError as exc:  # requests' timeouts and connection errors are OSErrors
            raise BrokerUnavailableError(f"Alpaca did not answer: {exc}") from exc


class _NotFoundError(Exception):
    pass


def _translate(exc: APIError) -> Exception:
    status = exc.status_code
    message = str(exc)
    if status == 404:
        return _NotFoundError(message)
    if status == 422 and "client_order_id" in message:
        return DuplicateClientOrderIdError(message)
    if status is not None and 400 <= status < 500:
        return OrderRejectedError(f"Alpaca refused the order ({status}): {message}")
    return BrokerUnavailableError(f"Alpaca answered {status}: {message}")


def _order_request(r: OrderRequest) -> Any:
    common: dict[str, Any] = {
        "symbol": r.symbol,
        "qty": float(r.qty),
        "side": AlpacaSide.BUY if r.side is Side.BUY else AlpacaSide.SELL,
        "time_in_force": AlpacaTIF.GTC if r.time_in_force is TimeInForce.GTC else AlpacaTIF.DAY,
        "client_order_id": r.client_order_id,
    }
    if r.take_profit is not None and r.stop_loss is not None:
        common |= {
            "order_class": OrderClass.BRACKET,
            "take_profit": TakeProfitRequest(limit_price=float(r.take_profit)),
            "stop_loss": StopLossRequest(stop_price=float(r.stop_loss)),
        }
    if r.type is OrderType.LIMIT:
        return LimitOrderRequest(limit_price=float(r.limit_price or 0), **common)
    if r.type is OrderType.STOP:
        return StopOrderRequest(stop_price=float(r.stop_price or 0), **common)
    return MarketOrderRequest(**common)


def _order(o: Any, leg: OrderLeg = OrderLeg.ENTRY) -> BrokerOrder:
    legs = [
        _order(
            child,
            OrderLeg.TAKE_PROFIT
            if _kind(child.order_type or child.type) == "limit"
            else OrderLeg.STOP_LOSS,
        )
        for child in (o.legs or [])
    ]
    return BrokerOrder(
        order_id=str(o.id),
        client_order_id=o.client_order_id,
        symbol=o.symbol,
        side=Side.BUY if _kind(o.side) == "buy" else Side.SELL,
        qty=_dec(o.qty),
        type=OrderType(_kind(o.order_type or o.type)),
        time_in_force=TimeInForce.GTC if _kind(o.time_in_force) == "gtc" else TimeInForce.DAY,
        limit_price=_dec_or_none(o.limit_price),
        stop_price=_dec_or_none(o.stop_price),
        status=_STATUS.get(_kind(o.status), OrderStatus.ACCEPTED),
        filled_qty=_dec(o.filled_qty or 0),
        avg_fill_price=_dec_or_none(o.filled_avg_price),
        submitted_at=o.submitted_at or o.created_at,
        leg=leg,
        legs=legs,
    )


def _kind(value: Any) -> str:
    """An alpaca-py enum or string, as our lower-case value."""
    return str(getattr(value, "value", value)).lower()


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def _dec_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
