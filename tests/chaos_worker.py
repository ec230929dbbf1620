"""The execution stage as a process to kill: tests/test_execution_chaos.py SIGKILLs it.

    python -m tests.chaos_worker --db URL --state-dir DIR --as-of ISO
                                 [--die-after-submit N] [--die-after-fill N]

Runs `execute_account` for every approved decision in the database on two
paper accounts, one after the other (what the flow's per-account tasks do),
each with its broker state in `DIR/<account>.json`, then exits 0. It prints
"ready" once imports and setup are done, so the parent times its kills from
there, not from the interpreter's start.

The fuses are fault injectors at the broker boundary, not mocks of our code:
the real paper broker does its work and writes its state file, then the
process SIGKILLs itself before our code sees the answer.

* `--die-after-submit N`: after the Nth order this process sends. The worst
  moment to die for exactly-once: the broker has the order, our row still says
  `pending_submit`.
* `--die-after-fill N`: after the Nth fill the broker makes in this process.
  The worst moment for "no fill lost": the broker filled, nothing is booked.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from db.engine import make_engine, make_session_factory
from models.accounts import AccountConfig, RiskLimits
from models.broker import BrokerFill, BrokerOrder, OrderRequest
from models.council import CouncilDecision
from models.enums import DecisionStatus
from services.brokers import PaperBroker
from tasks.execution.account_run import execute_account

# Loose enough that most intents pass: shorts allowed, no position or open-order cap.
LIMITS = RiskLimits(max_position_pct=Decimal(1), max_open_orders=None, allow_short=True)
ACCOUNTS = (
    AccountConfig(name="alpha", allocation=Decimal(1), limits=LIMITS),
    AccountConfig(name="beta", allocation=Decimal("0.5"), limits=LIMITS),
)


class Fuse:
    """Counts events across every broker of this process; the Nth one kills it."""

    def __init__(self, after: int | None) -> None:
        self.left = after

    def burn(self, events: int = 1) -> None:
        if self.left is None or events == 0:
            return
        self.left -= events
        if self.left <= 0:
            os.kill(os.getpid(), signal.SIGKILL)


class FusedPaperBroker(PaperBroker):
    """The real paper broker, burning a fuse once an order or a fill is stored."""

    def __init__(self, *args: Any, on_submit: Fuse, on_fill: Fuse, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_submit = on_submit
        self._on_fill = on_fill

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        order = await super().submit(request)
        self._on_submit.burn()
        return order

    def on_price(self, symbol: str, price: Decimal | float, ts: datetime) -> list[BrokerFill]:
        fills = super().on_price(symbol, price, ts)
        self._on_fill.burn(len(fills))
        return fills


def paper_state_path(state_dir: Path, account: AccountConfig) -> Path:
    return state_dir / f"{account.name}.json"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    as_of = datetime.fromisoformat(args.as_of)
    engine = make_engine(args.db)
    sessions = make_session_factory(engine)
    with sessions() as session:
        decision_ids = list(
            session.scalars(
                select(CouncilDecision.id)
                .where(CouncilDecision.status == DecisionStatus.APPROVED)
                .order_by(CouncilDecision.id)
            )
        )
    on_submit, on_fill = Fuse(args.die_after_submit), Fuse(args.die_after_fill)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    brokers = [
        FusedPaperBroker(
            account.starting_cash,
            slippage_bps=account.slippage_bps,
            commission_per_share=account.commission_per_share,
            state_path=paper_state_path(args.state_dir, account),
            on_submit=on_submit,
            on_fill=on_fill,
        )
        for account in ACCOUNTS
    ]
    os.write(1, b"ready\n")  # one write(2), as the zygote's own lines (tests/chaos_zygote.py)
    try:
        for account, broker in zip(ACCOUNTS, brokers, strict=True):
            asyncio.run(execute_account(sessions, account, broker, decision_ids, as_of=as_of))
    finally:
        engine.dispose()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos_worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--state-dir", required=True, type=Path, help="paper state files")
    parser.add_argument("--as-of", required=True, help="ISO instant, timezone-aware")
    parser.add_argument("--die-after-submit", type=_positive, default=None, metavar="N")
    parser.add_argument("--die-after-fill", type=_positive, default=None, metavar="N")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: events are counted from 1")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
