"""The vocabulary: SQLAlchemy rows, value types, enums, errors and pydantic schemas.

Imports nothing else of ours, so every other package can depend on it.
Importing this package registers every table on `Base.metadata`.
"""

from models import backtest, council, market, ops, strategy, trading, users
from models.base import Base

__all__ = ["Base", "backtest", "council", "market", "ops", "strategy", "trading", "users"]
