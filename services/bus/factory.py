"""Pick the bus from configuration: Redis Streams when a URL is set, else in-process."""

from __future__ import annotations

from services.bus.memory import DEFAULT_MAXLEN, InProcessBus
from services.bus.protocol import Bus
from services.bus.redis_streams import RedisStreamsBus


def make_bus(redis_url: str | None, *, maxlen: int = DEFAULT_MAXLEN) -> Bus:
    """The bus for `REDIS_URL` (`settings.redis_url`).

    Does not connect: a Redis bus whose server is down starts degraded on its
    first call rather than failing start-up, so the realtime process serves
    its dashboard (and reports /health/redis) while Redis is away. Only a
    Redis bus is shared between processes; the in-process one is per process.
    """
    if redis_url:
        return RedisStreamsBus(redis_url, maxlen=maxlen)
    return InProcessBus(maxlen=maxlen)
