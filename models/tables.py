"""Every table on one metadata: importing this registers them all on `Base.metadata`."""

from models import (
    backtest,
    council,
    market,
    ml,
    news,
    ops,
    sentiment,
    strategy,
    suggestions,
    track_record,
    trading,
    users,
)
from models.base import Base

__all__ = [
    "Base",
    "backtest",
    "council",
    "market",
    "ml",
    "news",
    "ops",
    "sentiment",
    "strategy",
    "suggestions",
    "track_record",
    "trading",
    "users",
]
