"""A refused Alpaca login ends an alpaca-py data stream instead of being retried for ever.

alpaca-py retries every failed login. `LoginReporting` is mixed in before an
alpaca-py stream class (stock trades, news): it overrides the private `_auth`
thinly (it calls the original), records a refusal of the key (402) or of its
data plan (409), stops the stream so `_run_forever` returns, and sets
`logged_in` after each login that succeeded. No alpaca-py import here: the news
stream builds its class on first use.
"""

from __future__ import annotations

import asyncio
from typing import Any

REFUSALS = frozenset({"auth failed", "insufficient subscription"})  # codes 402 and 409


class LoginReporting:
    """Mixin for an alpaca-py data stream class: `refusal`, `logged_in`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logged_in = asyncio.Event()
        self.refusal: ValueError | None = None

    async def _auth(self) -> None:
        try:
            await super()._auth()  # type: ignore[misc]
        except ValueError as exc:
            # alpaca-py raises ValueError(server's msg); only these two are final.
            if str(exc) in REFUSALS:
                self.refusal = exc
                await self.stop_ws()  # type: ignore[attr-defined]  # _run_forever returns
            raise
        self.logged_in.set()
