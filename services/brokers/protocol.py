"""The broker contract every adapter keeps (paper, Alpaca), and the errors it raises.

The broker is the last line of exactly-once: it refuses a second order with a
`client_order_id` it has seen, for as long as it lives, restarts included.
Everything else about exactly-once (deterministic ids, unique rows, reconcile
before submit) is the OMS's job; risk checks happen before `submit`.

What the contract leaves out: order amendment (cancel and resubmit instead),
partial-fill reporting beyond `filled_qty`, and streaming updates (poll
`list_orders` / `fills`).

* AITraderError
  x BrokerError
    x OrderRejectedError            the broker refused the order; nothing was created
    x DuplicateClientOrderIdError   that client_order_id was used before; nothing was created
    x UnknownOrderError             no order with that id (also a NotFoundError)
    x OrderNotCancelableError       the order already filled (or expired)
    x BrokerUnavailableError        the broker cannot be reached; retry later
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from models.broker import BrokerAccount, BrokerFill, BrokerOrder, BrokerPosition, OrderRequest
from models.errors import AITraderError, NotFoundError


class BrokerError(AITraderError):
    """Base of every error a broker adapter raises."""


class OrderRejectedError(BrokerError):
    """The broker refused the order (e.g. insufficient buying power); no order exists.

    The client_order_id is not consumed: the same request may be resubmitted
    once the reason is gone.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DuplicateClientOrderIdError(BrokerError):
    """An order with this client_order_id was submitted before; nothing new was created.

    The caller should `get_by_client_order_id` and carry on with that order.
    """

    def __init__(self, client_order_id: str) -> None:
        super().__init__(f"client_order_id {client_order_id!r} was already used")
        self.client_order_id = client_order_id


class UnknownOrderError(BrokerError, NotFoundError):
    """No order with this broker order id."""


class OrderNotCancelableError(BrokerError):
    """The order and all its legs are already filled or expired; nothing is left to cancel."""


class BrokerUnavailableError(BrokerError):
    """The broker cannot be reached or answered with a server error; safe to retry later.

    A retried `submit` is safe: the broker refuses the same client_order_id twice,
    so the caller resolves a `DuplicateClientOrderIdError` with `get_by_client_order_id`.
    """


class Broker(Protocol):
    """One broker account.

    Outages raise `BrokerUnavailableError` from every method; an empty list
    means "none", never "could not ask". Amounts are `Decimal`, times aware UTC.
    Orders are returned top-level with a bracket's exits nested in `legs`.
    """

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        """Place the order (a bracket when the request has exits) and return it as accepted.

        Raises `DuplicateClientOrderIdError` if the client_order_id (or a leg id
        derived from it) was seen before, and `OrderRejectedError` when the
        broker refuses it (insufficient buying power, no price to check a market
        order against, ...). Either way no order is created.
        """
        ...

    async def cancel(self, order_id: str) -> BrokerOrder:
        """Cancel the order and any of its open legs; return it as it now stands.

        Canceling an order that is already canceled returns it unchanged, so a
        retried cancel is harmless. Raises `UnknownOrderError` for an unknown id
        and `OrderNotCancelableError` when nothing of it is open any more.
        """
        ...

    async def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        """The order (or bracket leg) with our id, or None if the broker never accepted one."""
        ...

    async def list_orders(self, open_only: bool = False) -> list[BrokerOrder]:
        """Top-level orders, oldest first; `open_only` keeps those with an open entry or leg."""
        ...

    async def fills(self, since: datetime | None = None) -> list[BrokerFill]:
        """Executions in time order, those at or after `since` if given (dedupe by `fill_id`)."""
        ...

    async def positions(self) -> list[BrokerPosition]:
        """Non-zero positions, by symbol."""
        ...

    async def account(self) -> BrokerAccount:
        """Cash, equity and buying power now."""
        ...
