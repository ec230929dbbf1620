"""The event bus: streams of `BusMessage`s between the realtime process and the flows.

One contract (`Bus`), two implementations: `InProcessBus`, the embedded
default, and `RedisStreamsBus` for production (`REDIS_URL`), where both
processes publish and consume. Delivery through consumer groups is
at-least-once (ack, or another consumer reclaims the entry); `tail` fans out
to every reader for live feeds. Stream names live in `models.bus`.

* AITraderError
  x BusError
    x BusUnavailableError   Redis unreachable, or the bus closed
"""

from services.bus.factory import make_bus
from services.bus.memory import InProcessBus
from services.bus.protocol import Bus, BusError, BusUnavailableError, Delivery
from services.bus.redis_streams import RedisStreamsBus

__all__ = [
    "Bus",
    "BusError",
    "BusUnavailableError",
    "Delivery",
    "InProcessBus",
    "RedisStreamsBus",
    "make_bus",
]
