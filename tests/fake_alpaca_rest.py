"""A loopback fake of Alpaca's Trading REST API (v2), for testing the order path, and of
its market-data news endpoint (v1beta1), for testing the news import.

alpaca-py's real `TradingClient(..., url_override=server.base_url)` talks to it
over HTTP, so request encoding, response parsing and error raising under test
are alpaca-py's own code. `trading_client(server)` builds one with client-side
retries off and a read timeout (alpaca-py sets neither; see below).

The subset served, in Alpaca's JSON shapes:

* `POST /v2/orders`: market/limit/stop/stop_limit, `order_class: "bracket"`
  (`take_profit.limit_price`, `stop_loss.stop_price`) -> an order with 2 `legs`
  (limit + stop, opposite side, status `held` until the parent fills); our
  `client_order_id` is kept, a reused one is a 422 "client_order_id must be unique";
* `GET /v2/orders/{order_id}`, `GET /v2/orders:by_client_order_id?client_order_id=`
  (both nest the legs), `GET /v2/orders?status=open|closed|all&nested=&symbols=&limit=`
  (without `nested`, legs are listed as orders of their own);
* `DELETE /v2/orders/{order_id}` -> 204 (a bracket's legs go with it), 422 if the
  order is already filled/canceled, 404 if unknown;
* `GET /v2/account`, `GET /v2/positions`, `GET /v2/clock`;
* `GET /v1beta1/news?start=&end=&symbols=A,B&sort=asc|desc&limit=&page_token=`
  (what alpaca-py's `NewsClient` asks): the items `set_news(...)` gave, created in
  [start, end] and naming any of `symbols`, sorted by `created_at` (then id), at most
  `min(limit, news_page_size)` a page (Alpaca: limit 1..50, default 10), with an
  opaque `next_page_token` while more are left; alpaca-py follows the pages itself,
  so a small `news_page_size` makes a test cross pages.

The test scripts behaviours per route: `enqueue(..., on="POST /v2/orders")` (the
default route) queues answers for the next requests to that route; an empty
queue means `Accept()`, the normal answer:

* `Reject(status, message)` -> Alpaca's error body `{"code", "message"}`, nothing changes;
* `ServerError(500|503)` -> the same, nothing changes;
* `Slow(seconds, then)` -> waits, then does `then`; if the client hung up meanwhile,
  the request is dropped unprocessed (the "lost on the wire" timeout);
* `AcceptThenTimeout(seconds)` -> does the work (the order IS created), then holds
  the answer `seconds` (the "crash between submit and record" timeout).

The test drives the market: `fill(order_id_or_client_id, price, qty=None)` fills
(partially if `qty` is less than what is left), moving cash and positions; a
filled bracket parent activates its legs, a filled leg cancels its sibling.
`set_price(symbol, price)` marks positions. Every request is recorded before it
is answered (method, path, query, JSON body, lower-cased headers).

alpaca-py 0.44 facts (pinned by tests/test_fake_alpaca_rest.py):

* HTTP errors raise `alpaca.common.exceptions.APIError`; the HTTP status is
  `exc.status_code` (from `exc.response.status_code`), Alpaca's error code is
  `exc.code` and its text `exc.message` (both parse the body as JSON on access:
  a non-JSON body makes them raise `JSONDecodeError`).
* `requests` is called with NO timeout: a hung server hangs the caller forever.
  `trading_client` mounts an adapter with a default timeout; a slow answer then
  raises the bare `requests.exceptions.ReadTimeout` (a `requests.Timeout`, not an
  `APIError`, not a `ConnectionError`), and a refused connection the bare
  `requests.exceptions.ConnectionError`.
* Retries: `RESTClient` retries only HTTP statuses in `_retry_codes`
  (default `[429, 504]`), `_retry` more times (default 3), sleeping `_retry_wait`
  s (default 3) between them; never on timeouts or connection errors, so a POST
  is never resent by alpaca-py itself. `TradingClient.__init__` does not pass the
  `retry_*` arguments through (and `RESTClient` ignores `retry_attempts=0`), so
  the only off switch is `client._retry = 0`.

Not here: replace (PATCH), cancel-all, trailing stops, OCO/OTO classes, crypto,
time-in-force expiry, buying-power checks (script a `Reject(403, ...)`), paging of
orders; news `include_content` (items carry `content` always) and images.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

from alpaca.trading.client import TradingClient
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.brokers.alpaca import trading_client as make_client
from tests.live_server import serve_in_thread

_POLL_S = 0.02

SUBMIT = "POST /v2/orders"
NEWS = "GET /v1beta1/news"
ROUTES = (
    SUBMIT,
    "GET /v2/orders",
    "GET /v2/orders/{order_id}",
    "GET /v2/orders:by_client_order_id",
    "DELETE /v2/orders/{order_id}",
    "GET /v2/account",
    "GET /v2/positions",
    "GET /v2/clock",
    NEWS,
)

# Alpaca's error codes for the answers the fake gives by itself.
_UNIQUE = 40010001
_NOT_FOUND = 40410000
_UNPROCESSABLE = 42210000
_UNAUTHORIZED = 40110000
_SERVER = 50010000

_OPEN = frozenset({"new", "accepted", "pending_new", "partially_filled", "held", "pending_cancel"})


# --- behaviours ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    """The normal answer (what an empty queue means)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """An Alpaca error, e.g. `Reject(403, "insufficient buying power")`; nothing changes."""

    status: int = 403
    message: str = "insufficient buying power"
    code: int | None = None  # Alpaca's 8-digit code; default: status * 100_000


@dataclass(frozen=True, slots=True)
class ServerError:
    status: Literal[500, 502, 503, 504] = 500


@dataclass(frozen=True, slots=True)
class Slow:
    """Do `then` after `seconds`, unless the client hung up first: then drop the request."""

    seconds: float
    then: Behaviour = field(default_factory=Accept)


@dataclass(frozen=True, slots=True)
class AcceptThenTimeout:
    """Do the work now (the order exists), answer after `seconds` (or when the client hangs up)."""

    seconds: float


Behaviour = Accept | Reject | ServerError | Slow | AcceptThenTimeout


# --- records ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as it arrived. `received_at` is `time.monotonic()`."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    headers: dict[str, str]  # names lower-cased
    received_at: float

    @property
    def client_order_id(self) -> str | None:
        """Of a submit (body) or a by-client-id lookup (query)."""
        if self.body is not None and "client_order_id" in self.body:
            return str(self.body["client_order_id"])
        return self.query.get("client_order_id")


# --- state --------------------------------------------------------------------


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    order_class: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    status: str
    created_at: datetime
    updated_at: datetime
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    legs: list[str] = field(default_factory=list)  # order ids
    parent_id: str | None = None


@dataclass
class _Position:
    qty: Decimal  # signed: negative is short
    avg_entry_price: Decimal


class AlpacaFakeError(Exception):
    """A request the fake answers with an Alpaca error body."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code if code is not None else status * 100_000


# --- the server ---------------------------------------------------------------


@dataclass
class FakeAlpacaRest:
    """The app, its account and its script. Touched from the test's thread and uvicorn's:
    all state is under one lock.
    """

    cash: Decimal = Decimal(100_000)
    market_open: bool = True
    news_page_size: int = 50  # Alpaca's largest page; smaller makes alpaca-py follow pages
    base_url: str = ""  # no /v2: alpaca-py appends it; set by `fake_alpaca_rest()`
    _queues: defaultdict[str, deque[Behaviour]] = field(
        default_factory=lambda: defaultdict(deque), init=False, repr=False
    )
    _records: list[RecordedRequest] = field(default_factory=list, init=False, repr=False)
    _orders: dict[str, _Order] = field(default_factory=dict, init=False, repr=False)
    _by_client_id: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _positions: dict[str, _Position] = field(default_factory=dict, init=False, repr=False)
    _prices: dict[str, Decimal] = field(default_factory=dict, init=False, repr=False)
    _news: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _closing: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _account_id: str = field(default_factory=lambda: str(uuid.uuid4()), init=False, repr=False)

    # --- the script ---

    def enqueue(self, *behaviours: Behaviour, on: str = SUBMIT) -> None:
        if on not in ROUTES:
            raise ValueError(f"unknown route {on!r}; one of {ROUTES}")
        with self._lock:
            self._queues[on].extend(behaviours)

    def reset(self, *, cash: Decimal | int = 100_000) -> None:
        """Forget script, records, orders and positions, so one server serves a whole module."""
        with self._lock:
            self._queues.clear()
            self._records.clear()
            self._orders.clear()
            self._by_client_id.clear()
            self._positions.clear()
            self._prices.clear()
            self.cash = Decimal(cash)
            self.market_open = True
            self._news.clear()
            self.news_page_size = 50

    @property
    def pending(self) -> int:
        """Behaviours queued and not yet used, over all routes."""
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot, oldest first."""
        with self._lock:
            return list(self._records)

    def submits(self, client_order_id: str | None = None) -> list[RecordedRequest]:
        """The `POST /v2/orders` that reached the server, optionally for one client order id."""
        return [
            r
            for r in self.requests
            if r.method == "POST"
            and r.path == "/v2/orders"
            and (client_order_id is None or r.client_order_id == client_order_id)
        ]

    # --- the market ---

    def order(self, order_id_or_client_id: str) -> dict[str, Any]:
        """The order as `GET /v2/orders/{id}` would answer it; KeyError if unknown."""
        with self._lock:
            return self._order_json(self._find(order_id_or_client_id), nested=True)

    def set_price(self, symbol: str, price: Decimal | float | str) -> None:
        with self._lock:
            self._prices[symbol] = Decimal(str(price))

    def set_news(self, *items: Mapping[str, Any]) -> None:
        """The news archive `GET /v1beta1/news` serves, replacing any before.

        Each item needs `id`, `headline`, `symbols` and `created_at` (a datetime or
        Alpaca's text); the rest of Alpaca's fields default (`updated_at` to
        `created_at`, `source` "benzinga", `summary`/`author`/`content` "", `url` None).
        """
        with self._lock:
            self._news = [_news_json(item) for item in items]

    def fill(
        self,
        order_id_or_client_id: str,
        price: Decimal | float | str,
        qty: Decimal | float | str | None = None,
    ) -> dict[str, Any]:
        """Fill `qty` (default: all that is left) at `price`; returns the order's new JSON.

        Raises KeyError for an unknown order, ValueError for one that is not open
        (a `held` bracket leg is not fillable until its parent has filled).
        """
        px = Decimal(str(price))
        with self._lock:
            order = self._find(order_id_or_client_id)
            if order.status not in _OPEN or order.status == "held":
                raise ValueError(f"order {order.id} is {order.status}, not fillable")
            total = order.qty if order.qty is not None else _notional_qty(order, px)
            left = total - order.filled_qty
            q = left if qty is None else Decimal(str(qty))
            if not Decimal(0) < q <= left:
                raise ValueError(f"fill qty {q} outside (0, {left}]")
            now = _now()
            paid = order.filled_qty * (order.filled_avg_price or Decimal(0)) + q * px
            order.filled_qty += q
            order.filled_avg_price = paid / order.filled_qty
            order.status = "filled" if order.filled_qty == total else "partially_filled"
            order.updated_at = now
            if order.status == "filled":
                order.filled_at = now
                self._after_fill(order, now)
            self._book(order.symbol, q if order.side == "buy" else -q, px)
            self._prices[order.symbol] = px
            return self._order_json(order, nested=True)

    def _after_fill(self, order: _Order, now: datetime) -> None:
        for leg_id in order.legs:  # a filled parent activates its legs
            leg = self._orders[leg_id]
            if leg.status == "held":
                leg.status, leg.updated_at = "new", now
        if order.parent_id is not None:  # a filled leg cancels its sibling (OCO)
            for sibling_id in self._orders[order.parent_id].legs:
                sibling = self._orders[sibling_id]
                if sibling.id != order.id and sibling.status in _OPEN:
                    sibling.status, sibling.canceled_at, sibling.updated_at = "canceled", now, now

    def _book(self, symbol: str, delta: Decimal, px: Decimal) -> None:
        self.cash -= delta * px
        pos = self._positions.get(symbol)
        if pos is None:
            self._positions[symbol] = _Position(delta, px)
            return
        new_qty = pos.qty + delta
        if new_qty == 0:
            del self._positions[symbol]
        elif (pos.qty > 0) == (delta > 0):  # adding: weighted average
            pos.avg_entry_price = (pos.qty * pos.avg_entry_price + delta * px) / new_qty
            pos.qty = new_qty
        elif (pos.qty > 0) == (new_qty > 0):  # reducing: entry price stays
            pos.qty = new_qty
        else:  # crossed through zero: a new position at this price
            self._positions[symbol] = _Position(new_qty, px)

    def _find(self, ref: str) -> _Order:
        order_id = ref if ref in self._orders else self._by_client_id.get(ref)
        if order_id is None:
            raise KeyError(f"no order with id or client_order_id {ref!r}")
        return self._orders[order_id]

    # --- HTTP ---

    @cached_property
    def app(self) -> FastAPI:
        """The ASGI app, for `serve_in_thread` (or any server) to run."""
        app = FastAPI()
        handlers: dict[str, Callable[[Request, dict[str, Any] | None], Response]] = {
            SUBMIT: self._submit,
            "GET /v2/orders": self._list_orders,
            "GET /v2/orders/{order_id}": self._get_order,
            "GET /v2/orders:by_client_order_id": self._get_by_client_id,
            "DELETE /v2/orders/{order_id}": self._cancel,
            "GET /v2/account": self._account,
            "GET /v2/positions": self._list_positions,
            "GET /v2/clock": self._clock,
            NEWS: self._list_news,
        }
        # The literal `orders:by_client_order_id` goes before `orders/{order_id}` (no clash anyway).
        for route in sorted(ROUTES, key=lambda r: "{" in r):
            method, path = route.split(" ")
            app.add_api_route(path, self._endpoint(route, handlers[route]), methods=[method])
        return app

    def _endpoint(
        self, route: str, handler: Callable[[Request, dict[str, Any] | None], Response]
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, route, handler)

        return endpoint

    async def _serve(
        self,
        request: Request,
        route: str,
        handler: Callable[[Request, dict[str, Any] | None], Response],
    ) -> Response:
        raw = await request.body()
        body = await request.json() if raw else None
        headers = {k.lower(): v for k, v in request.headers.items()}
        record = RecordedRequest(
            request.method,
            request.url.path,
            dict(request.query_params),
            body,
            headers,
            time.monotonic(),
        )
        with self._lock:
            self._records.append(record)
            queue = self._queues[route]
            behaviour = queue.popleft() if queue else Accept()
        if not (headers.get("apca-api-key-id") and headers.get("apca-api-secret-key")):
            return _error(AlpacaFakeError(401, "request is not authorized", _UNAUTHORIZED))
        while isinstance(behaviour, Slow):
            if not await self._wait(request, behaviour.seconds):
                return Response(status_code=499)  # nobody is listening
            behaviour = behaviour.then
        match behaviour:
            case Accept():
                return self._handle(handler, request, body)
            case AcceptThenTimeout(seconds):
                response = self._handle(handler, request, body)
                await self._wait(request, seconds)
                return response
            case Reject(status, message, code):
                return _error(AlpacaFakeError(status, message, code))
            case ServerError(status):
                return _error(AlpacaFakeError(status, "internal server error occurred", _SERVER))
            case Slow():
                raise AssertionError("Slow is unwrapped above")

    def _handle(
        self,
        handler: Callable[[Request, dict[str, Any] | None], Response],
        request: Request,
        body: dict[str, Any] | None,
    ) -> Response:
        with self._lock:
            try:
                return handler(request, body)
            except AlpacaFakeError as exc:
                return _error(exc)

    async def _wait(self, request: Request, seconds: float) -> bool:
        """Sleep; False if the client went away or the server is stopping first."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._closing.is_set() or await request.is_disconnected():
                return False
            await asyncio.sleep(min(left, _POLL_S))
        return True

    # --- handlers (called under the lock) ---

    def _submit(self, request: Request, body: dict[str, Any] | None) -> Response:
        if body is None:
            raise AlpacaFakeError(422, "request body is required", _UNPROCESSABLE)
        client_order_id = str(body.get("client_order_id") or uuid.uuid4())
        if client_order_id in self._by_client_id:
            raise AlpacaFakeError(422, "client_order_id must be unique", _UNIQUE)
        if len(client_order_id) > 128:
            raise AlpacaFakeError(
                422, "client_order_id must be no more than 128 characters", _UNIQUE
            )
        for name in ("symbol", "side", "type", "time_in_force"):
            if not body.get(name):
                raise AlpacaFakeError(422, f"{name} is required", _UNPROCESSABLE)
        qty, notional = _dec(body.get("qty")), _dec(body.get("notional"))
        if (qty is None) == (notional is None):
            raise AlpacaFakeError(422, "qty or notional is required", _UNPROCESSABLE)
        kind = str(body["type"])
        limit_price, stop_price = _dec(body.get("limit_price")), _dec(body.get("stop_price"))
        if kind in ("limit", "stop_limit") and limit_price is None:
            raise AlpacaFakeError(422, "limit_price is required", _UNPROCESSABLE)
        if kind in ("stop", "stop_limit") and stop_price is None:
            raise AlpacaFakeError(422, "stop_price is required", _UNPROCESSABLE)
        order_class = str(body.get("order_class") or "simple")
        if order_class not in ("simple", "bracket"):
            raise AlpacaFakeError(422, f"fake: order_class {order_class} not served", 42200000)
        now = _now()
        parent = _Order(
            id=str(uuid.uuid4()),
            client_order_id=client_order_id,
            symbol=str(body["symbol"]),
            side=str(body["side"]),
            type=kind,
            time_in_force=str(body["time_in_force"]),
            order_class=order_class,
            qty=qty,
            notional=notional,
            limit_price=limit_price,
            stop_price=stop_price,
            extended_hours=bool(body.get("extended_hours")),
            status="new",
            created_at=now,
            updated_at=now,
        )
        legs = self._bracket_legs(parent, body) if order_class == "bracket" else []
        for order in (parent, *legs):
            self._orders[order.id] = order
            self._by_client_id[order.client_order_id] = order.id
        parent.legs = [leg.id for leg in legs]
        return JSONResponse(self._order_json(parent, nested=True))

    def _bracket_legs(self, parent: _Order, body: dict[str, Any]) -> list[_Order]:
        take_profit = _dec((body.get("take_profit") or {}).get("limit_price"))
        stop_loss = _dec((body.get("stop_loss") or {}).get("stop_price"))
        if take_profit is None or stop_loss is None:
            raise AlpacaFakeError(
                422,
                "bracket orders must specify both take_profit and stop_loss",
                _UNPROCESSABLE,
            )
        if parent.qty is None:
            raise AlpacaFakeError(422, "bracket orders require qty", _UNPROCESSABLE)
        exit_side = "sell" if parent.side == "buy" else "buy"

        def leg(kind: str, limit: Decimal | None, stop: Decimal | None) -> _Order:
            return _Order(
                id=str(uuid.uuid4()),
                client_order_id=str(uuid.uuid4()),
                symbol=parent.symbol,
                side=exit_side,
                type=kind,
                time_in_force=parent.time_in_force,
                order_class="bracket",
                qty=parent.qty,
                notional=None,
                limit_price=limit,
                stop_price=stop,
                extended_hours=False,
                status="held",
                created_at=parent.created_at,
                updated_at=parent.created_at,
                parent_id=parent.id,
            )

        return [leg("limit", take_profit, None), leg("stop", None, stop_loss)]

    def _get_order(self, request: Request, body: dict[str, Any] | None) -> Response:
        order = self._orders.get(request.path_params["order_id"])
        if order is None:
            raise AlpacaFakeError(404, "order not found", _NOT_FOUND)
        return JSONResponse(self._order_json(order, nested=True))

    def _get_by_client_id(self, request: Request, body: dict[str, Any] | None) -> Response:
        order_id = self._by_client_id.get(request.query_params.get("client_order_id", ""))
        if order_id is None:
            raise AlpacaFakeError(404, "order not found", _NOT_FOUND)
        return JSONResponse(self._order_json(self._orders[order_id], nested=True))

    def _list_orders(self, request: Request, body: dict[str, Any] | None) -> Response:
        q = request.query_params
        status = q.get("status", "open").lower()
        nested = q.get("nested", "false").lower() == "true"
        symbols = set(q["symbols"].split(",")) if q.get("symbols") else None
        limit = int(q.get("limit", 50))
        orders = [
            o
            for o in self._orders.values()
            if not (nested and o.parent_id is not None)
            and (symbols is None or o.symbol in symbols)
            and (status == "all" or (o.status in _OPEN) == (status == "open"))
        ]
        if q.get("direction", "desc").lower() == "desc":
            orders.reverse()
        return JSONResponse([self._order_json(o, nested=nested) for o in orders[:limit]])

    def _cancel(self, request: Request, body: dict[str, Any] | None) -> Response:
        order = self._orders.get(request.path_params["order_id"])
        if order is None:
            raise AlpacaFakeError(404, "order not found", _NOT_FOUND)
        if order.status not in _OPEN:
            raise AlpacaFakeError(422, f'order is already in "{order.status}" state', 42210000)
        now = _now()
        for o in (order, *(self._orders[i] for i in order.legs)):
            if o.status in _OPEN:
                o.status, o.canceled_at, o.updated_at = "canceled", now, now
        return Response(status_code=204)

    def _account(self, request: Request, body: dict[str, Any] | None) -> Response:
        long_value = sum((v for v in self._market_values().values() if v > 0), start=Decimal(0))
        short_value = sum((v for v in self._market_values().values() if v < 0), start=Decimal(0))
        equity = self.cash + long_value + short_value
        buying_power = max(self.cash, Decimal(0))
        return JSONResponse(
            {
                "id": self._account_id,
                "account_number": "PA3FAKE00001",
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "currency": "USD",
                "buying_power": _s(buying_power),
                "regt_buying_power": _s(buying_power),
                "daytrading_buying_power": "0",
                "non_marginable_buying_power": _s(buying_power),
                "effective_buying_power": _s(buying_power),
                "options_buying_power": _s(buying_power),
                "cash": _s(self.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "pending_transfer_out": "0",
                "portfolio_value": _s(equity),
                "equity": _s(equity),
                "last_equity": _s(equity),
                "long_market_value": _s(long_value),
                "short_market_value": _s(short_value),
                "position_market_value": _s(long_value + short_value),
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "multiplier": "1",
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "trade_suspended_by_user": False,
                "shorting_enabled": False,
                "daytrade_count": 0,
                "options_approved_level": 0,
                "options_trading_level": 0,
                "created_at": _ts(datetime(2024, 1, 2, tzinfo=UTC)),
            }
        )

    def _market_values(self) -> dict[str, Decimal]:
        return {
            symbol: pos.qty * self._prices.get(symbol, pos.avg_entry_price)
            for symbol, pos in self._positions.items()
        }

    def _list_positions(self, request: Request, body: dict[str, Any] | None) -> Response:
        return JSONResponse([self._position_json(s, p) for s, p in self._positions.items()])

    def _position_json(self, symbol: str, pos: _Position) -> dict[str, Any]:
        price = self._prices.get(symbol, pos.avg_entry_price)
        cost_basis = pos.qty * pos.avg_entry_price
        market_value = pos.qty * price
        pl = market_value - cost_basis
        plpc = pl / abs(cost_basis) if cost_basis else Decimal(0)
        return {
            "asset_id": _asset_id(symbol),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": _s(pos.qty),
            "qty_available": _s(pos.qty),
            "avg_entry_price": _s(pos.avg_entry_price),
            "side": "long" if pos.qty > 0 else "short",
            "market_value": _s(market_value),
            "cost_basis": _s(cost_basis),
            "unrealized_pl": _s(pl),
            "unrealized_plpc": _s(plpc),
            "unrealized_intraday_pl": _s(pl),
            "unrealized_intraday_plpc": _s(plpc),
            "current_price": _s(price),
            "lastday_price": _s(price),
            "change_today": "0",
        }

    def _clock(self, request: Request, body: dict[str, Any] | None) -> Response:
        now = _now()
        next_open = now + timedelta(hours=17 if self.market_open else 1)
        next_close = now + timedelta(hours=1 if self.market_open else 8)
        return JSONResponse(
            {
                "timestamp": _ts(now),
                "is_open": self.market_open,
                "next_open": _ts(next_open),
                "next_close": _ts(next_close),
            }
        )

    def _list_news(self, request: Request, body: dict[str, Any] | None) -> Response:
        q = request.query_params
        start, end = _query_time(q.get("start"), "start"), _query_time(q.get("end"), "end")
        symbols = {s for s in q.get("symbols", "").split(",") if s} or None
        limit = int(q.get("limit") or 10)
        if not 1 <= limit <= 50:
            raise AlpacaFakeError(422, "limit must be between 1 and 50", _UNPROCESSABLE)
        offset = _page_offset(q.get("page_token"))
        items = [
            n
            for n in self._news
            if (start is None or _parse_ts(n["created_at"]) >= start)
            and (end is None or _parse_ts(n["created_at"]) <= end)
            and (symbols is None or symbols & set(n["symbols"]))
        ]
        items.sort(
            key=lambda n: (_parse_ts(n["created_at"]), n["id"]),
            reverse=q.get("sort", "desc").lower() == "desc",
        )
        upto = offset + min(limit, self.news_page_size)
        token = _page_token(upto) if upto < len(items) else None
        return JSONResponse({"news": items[offset:upto], "next_page_token": token})

    def _order_json(self, order: _Order, *, nested: bool) -> dict[str, Any]:
        legs = [self._order_json(self._orders[i], nested=False) for i in order.legs]
        return {
            "id": order.id,
            "client_order_id": order.client_order_id,
            "created_at": _ts(order.created_at),
            "updated_at": _ts(order.updated_at),
            "submitted_at": _ts(order.created_at),
            "filled_at": _ts(order.filled_at),
            "expired_at": None,
            "expires_at": None,
            "canceled_at": _ts(order.canceled_at),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": _asset_id(order.symbol),
            "symbol": order.symbol,
            "asset_class": "us_equity",
            "notional": _s(order.notional),
            "qty": _s(order.qty),
            "filled_qty": _s(order.filled_qty),
            "filled_avg_price": _s(order.filled_avg_price),
            "order_class": order.order_class,
            "order_type": order.type,
            "type": order.type,
            "side": order.side,
            "position_intent": None,
            "time_in_force": order.time_in_force,
            "limit_price": _s(order.limit_price),
            "stop_price": _s(order.stop_price),
            "status": order.status,
            "extended_hours": order.extended_hours,
            "legs": legs if nested and legs else None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
        }


def _error(exc: AlpacaFakeError) -> JSONResponse:
    return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _s(value: Decimal | None) -> str | None:
    """Alpaca's numbers are strings: "10", "101.5", never "1E+1"."""
    return None if value is None else format(value.normalize(), "f")


def _notional_qty(order: _Order, price: Decimal) -> Decimal:
    assert order.notional is not None
    return order.notional / price


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _news_json(item: Mapping[str, Any]) -> dict[str, Any]:
    created = item["created_at"]
    out: dict[str, Any] = {
        "source": "benzinga",
        "summary": "",
        "author": "",
        "content": "",
        "url": None,
        "images": [],
        **item,
        "id": int(item["id"]),
        "symbols": list(item["symbols"]),
    }
    out.setdefault("updated_at", created)
    for name in ("created_at", "updated_at"):
        if isinstance(out[name], datetime):
            out[name] = _ts(out[name].astimezone(UTC))
    return out


def _parse_ts(text: str) -> datetime:
    """Alpaca's RFC 3339 (`Z` or an offset), or a bare date: midnight UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _query_time(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        return _parse_ts(text)
    except ValueError:
        raise AlpacaFakeError(400, f"invalid {name}: {text}", 40010000) from None


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"news:{offset}".encode()).decode()


def _page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        kind, offset = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        if kind != "news":
            raise ValueError(kind)
        return int(offset)
    except ValueError:
        raise AlpacaFakeError(400, "invalid page token", 40010000) from None


def _asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-asset:{symbol}"))


# --- running it ---------------------------------------------------------------


@contextmanager
def fake_alpaca_rest(*, cash: Decimal | int = 100_000) -> Iterator[FakeAlpacaRest]:
    """Serve a `FakeAlpacaRest` on loopback; `server.base_url` is the `url_override`."""
    server = FakeAlpacaRest(cash=Decimal(cash))
    with serve_in_thread(server.app) as url:
        server.base_url = url
        try:
            yield server
        finally:
            server._closing.set()


def trading_client(server: FakeAlpacaRest, *, timeout_s: float = 2.0) -> TradingClient:
    """alpaca-py's real client, pointed at `server`, with no client retries and a read timeout."""
    return make_client(
        "fake-key", "fake-secret", paper=True, url=server.base_url, timeout_s=timeout_s
    )
