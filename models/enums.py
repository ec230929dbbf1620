"""Closed sets of values. Stored as strings (no native DB enums) so both databases migrate alike."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum


class Timeframe(StrEnum):
    """Bar interval. A bar is stamped with its interval start and is known at its end."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"
    TICK = "tick"  # not a bar: what tick-by-tick signals are computed on; bar imports refuse it

    @property
    def duration(self) -> timedelta:
        """How long after its stamp the bar's close is known."""
        return _DURATIONS[self]


_DURATIONS = {
    Timeframe.M1: timedelta(minutes=1),
    Timeframe.M5: timedelta(minutes=5),
    Timeframe.M15: timedelta(minutes=15),
    Timeframe.H1: timedelta(hours=1),
    Timeframe.D1: timedelta(days=1),
    Timeframe.TICK: timedelta(0),  # a tick is known at its own instant
}


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class OrderLeg(StrEnum):
    """Role of an order inside a bracket: the entry and its two exits."""

    ENTRY = "entry"
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"


class OrderStatus(StrEnum):
    PENDING_SUBMIT = "pending_submit"  # our row is written, the broker has not confirmed it
    NEW = "new"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class IntentStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    RISK_REJECTED = "risk_rejected"
    SUBMITTED = "submitted"
    FILLED = "filled"
    CANCELED = "canceled"
    FAILED = "failed"


class DecisionAction(StrEnum):
    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"


class DecisionStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReportVerdict(StrEnum):
    """A person's judgement of a research note, after reading it against its data."""

    VERIFIED = "verified"
    DISPUTED = "disputed"


class RunStatus(StrEnum):
    """Lifecycle shared by jobs, council runs and backtests."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class ModelStatus(StrEnum):
    """A registered model version's standing (db/queries/model_registry.py moves it).

    candidate: trained and registered, serving nothing; active: the one version of its
    name that serves; challenger: scored live beside the active one (A/B), deciding
    nothing; retired: was active, replaced; refused: did not beat the active version
    out of sample.
    """

    CANDIDATE = "candidate"
    ACTIVE = "active"
    CHALLENGER = "challenger"
    RETIRED = "retired"
    REFUSED = "refused"


class BrokerKind(StrEnum):
    PAPER = "paper"
    ALPACA = "alpaca"


class ChatRole(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class LLMCallStatus(StrEnum):
    OK = "ok"
    REPAIRED = "repaired"
    PARSE_ERROR = "parse_error"
    ERROR = "error"


class Role(StrEnum):
    """What an API token may do; each role can do everything the roles below it can.

    viewer reads; trader also moves money and starts LLM spend; admin also
    halts trading and reads the audit log.
    """

    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_ROLE_RANK = {Role.VIEWER: 0, Role.TRADER: 1, Role.ADMIN: 2}


class JobType(StrEnum):
    """What `POST /api/jobs` can start; each is a Prefect flow (flows/jobs.py)."""

    COUNCIL = "council"
    RESEARCH = "research"
    BACKTEST = "backtest"
    TRAINING = "training"
    SENTIMENT = "sentiment"
    PATTERN_SCAN = "pattern_scan"
    SUGGESTION = "suggestion"
    COUNCIL_BACKTEST = "council_backtest"


class SizingMode(StrEnum):
    """How many shares a backtest's entry buys (or sells short)."""

    SHARES = "shares"
    """`value` shares per entry."""
    CASH = "cash"
    """`value` of currency per entry."""
    EQUITY_FRACTION = "equity_fraction"
    """`value` x the equity of the column's cash pool at the previous close."""


class Direction(StrEnum):
    """Which side a backtest trades."""

    LONG = "long"
    SHORT = "short"
    BOTH = "both"


class ConflictRule(StrEnum):
    """Which copy of a bar an import keeps when duplicates disagree (tasks/bar_validation.py)."""

    REJECT = "reject"
    FIRST = "first"
    LAST = "last"
