"""Broker adapters behind one contract (`Broker`): the built-in `PaperBroker` for now.

* AITraderError
  x BrokerError
    x OrderRejectedError            refused; nothing created
    x DuplicateClientOrderIdError   client_order_id seen before; nothing created
    x UnknownOrderError             no such order (also a NotFoundError)
    x OrderNotCancelableError       nothing of the order is open any more
    x BrokerUnavailableError        unreachable; retry later
"""

from services.brokers.paper import PaperBroker
from services.brokers.protocol import (
    Broker,
    BrokerError,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    OrderNotCancelableError,
    OrderRejectedError,
    UnknownOrderError,
)

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerUnavailableError",
    "DuplicateClientOrderIdError",
    "OrderNotCancelableError",
    "OrderRejectedError",
    "PaperBroker",
    "UnknownOrderError",
]
