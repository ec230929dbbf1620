"""The anonymised council: symbols become stable aliases and prices are rescaled in every
prompt, so a model cannot recall how the real series went on.

A model trained after a past week may remember it (services/llm/cutoffs.py).
Anonymised, a sitting shows `XQ7TB` at 41.37 where the data says AAPL at
157.92: each symbol has an alias and a price factor drawn from a hash of the
symbol and a seed (the same in every sitting, so a backtest's weeks agree),
and only `close` (the one price level in a snapshot) is rescaled; returns,
volatility, distances to moving averages, drawdowns and correlations are
ratios and stay as they are, so the data says the same thing. The stages run
wholly in the alias world (prompts, validation against the snapshot, the
review's ballots); what is stored (research notes, pitches, decisions, audit
records) is translated back at the boundary, so the tables and the execution
only ever see real symbols and real prices. The raw answers in `llm_calls`
stay as the model gave them.

Not hidden: dates (the snapshot's as_of) and sector names. A model can still
tell the week and the sector, not the company or its price path.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from models.snapshot import MarketSnapshot

DEFAULT_SEED = "aitrader-council"
PRICE_KEYS = ("entry_price", "take_profit", "stop_loss", "close")
_QUANTUM = Decimal("0.0001")


@dataclass(frozen=True)
class Aliases:
    """Real symbol <-> alias, and each symbol's price factor (alias price = real x factor)."""

    alias_of: dict[str, str]
    factor: dict[str, float]

    @property
    def real_of(self) -> dict[str, str]:
        return {a: s for s, a in self.alias_of.items()}

    def real(self, symbol: str) -> str:
        """The real symbol behind an alias (a symbol that is no alias is returned as is)."""
        return self.real_of.get(symbol, symbol)

    def snapshot(self, snapshot: MarketSnapshot) -> MarketSnapshot:
        """`snapshot` as an anonymised sitting shows it."""
        news = snapshot.news_sentiment
        return snapshot.model_copy(
            update={
                "universe": [self.alias_of.get(s, s) for s in snapshot.universe],
                "missing": [self.alias_of.get(s, s) for s in snapshot.missing],
                "symbols": [
                    m.model_copy(
                        update={
                            "symbol": self.alias_of[m.symbol],
                            "close": round(m.close * self.factor[m.symbol], 4),
                        }
                    )
                    for m in snapshot.symbols
                ],
                "correlation": snapshot.correlation.model_copy(
                    update={"symbols": [self.alias_of[s] for s in snapshot.correlation.symbols]}
                ),
                "news_sentiment": None
                if news is None
                else news.model_copy(
                    update={
                        "symbols": [
                            n.model_copy(update={"symbol": self.alias_of.get(n.symbol, n.symbol)})
                            for n in news.symbols
                        ]
                    }
                ),
            }
        )

    def record(self, value: Any, symbol: str | None = None) -> Any:
        """A JSON value from the alias world made real: every `symbol` field and alias in a
        text named back, and the price fields (`PRICE_KEYS`) of a record divided back by its
        symbol's factor."""
        if isinstance(value, dict):
            own = value.get("symbol")
            alias = own if isinstance(own, str) else symbol
            out = {k: self.record(v, alias) for k, v in value.items()}
            if isinstance(own, str):
                out["symbol"] = self.real(own)
            if alias in self.real_of:
                factor = self.factor[self.real(alias)]
                for key in PRICE_KEYS:
                    if out.get(key) is not None:
                        out[key] = _unscaled(out[key], factor)
            return out
        if isinstance(value, list):
            return [self.record(v, symbol) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, text: str) -> str:
        """`text` with every alias in it replaced by its real symbol."""
        if not self.alias_of:
            return text
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, self.real_of)) + r")\b")
        return pattern.sub(lambda m: self.real_of[m.group(1)], text)


def aliases_for(symbols: Iterable[str], seed: str = DEFAULT_SEED) -> Aliases:
    """Each symbol's alias (`X` and four letters or digits, never a real symbol of the set)
    and price factor (10 ** u, u in [-1, 1)), both from sha256(seed, symbol): stable across
    sittings, runs and machines."""
    chosen = sorted(set(symbols))
    alias_of: dict[str, str] = {}
    factor: dict[str, float] = {}
    taken = set(chosen)
    for symbol in chosen:
        digest = hashlib.sha256(f"{seed}:{symbol}".encode()).digest()
        letters = base64.b32encode(digest).decode().rstrip("=")
        width = 4
        alias = "X" + letters[:width]
        while alias in taken:  # another symbol's alias, or a real symbol: take one more
            width += 1
            alias = "X" + letters[:width]
        taken.add(alias)
        alias_of[symbol] = alias
        factor[symbol] = 10 ** (int.from_bytes(digest[-4:], "big") / 2**31 - 1.0)
    return Aliases(alias_of, factor)


def _unscaled(value: Any, factor: float) -> Any:
    price = Decimal(str(value)) / Decimal(str(factor))
    rounded = price.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    return float(rounded) if isinstance(value, float) else str(rounded)
