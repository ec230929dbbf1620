"""The contract every market data source keeps.

A source owns its background task: `start` returns once it is running and
ticks flow to `on_tick` from the event loop's thread; `stop` returns once the
task has ended and nothing of the source is left running. `on_tick` must be
fast and must not raise (the PriceCache update is); a source never blocks the
loop for longer than one step of its own work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from models.market_data import Tick

TickHandler = Callable[[Tick], None]


class MarketDataSource(Protocol):
    name: str

    @property
    def running(self) -> bool: ...

    @property
    def symbols(self) -> frozenset[str]: ...

    async def start(self, on_tick: TickHandler) -> None: ...

    async def stop(self) -> None: ...

    def add_symbol(self, symbol: str) -> None: ...

    def remove_symbol(self, symbol: str) -> None: ...
