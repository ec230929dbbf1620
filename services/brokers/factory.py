"""The broker behind a configured account: a paper broker with its own state file, or Alpaca."""

from __future__ import annotations

import asyncio
import fcntl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from models.accounts import AccountConfig
from models.enums import BrokerKind
from models.errors import ConfigurationError
from services.brokers.paper import PaperBroker
from services.brokers.protocol import Broker, BrokerUnavailableError
from services.settings import Settings


def make_broker(account: AccountConfig, settings: Settings) -> Broker:
    """Connect `account` to its broker. Opening a paper broker reads its state file.

    One paper broker object per account per process: two objects on one state
    file would each write their own view of it.
    """
    if account.broker is BrokerKind.PAPER:
        settings.paper_state_dir.mkdir(parents=True, exist_ok=True)
        return PaperBroker(
            account.starting_cash,
            slippage_bps=account.slippage_bps,
            commission_per_share=account.commission_per_share,
            state_path=paper_state_path(account, settings),
        )
    key = account.api_key or settings.alpaca_api_key
    secret = account.secret_key or settings.alpaca_secret_key
    if key is None or secret is None:
        raise ConfigurationError(
            f"account {account.name}: Alpaca needs api_key and secret_key "
            "(in ACCOUNTS, or ALPACA_API_KEY / ALPACA_SECRET_KEY)"
        )
    from services.brokers.alpaca import AlpacaBroker  # alpaca-py and pandas: its accounts only

    return AlpacaBroker.connect(
        key.get_secret_value(),
        secret.get_secret_value(),
        paper=not account.live,
        url=account.base_url,
        timeout_s=account.timeout_s,
    )


@asynccontextmanager
async def open_broker(
    account: AccountConfig, settings: Settings, wait_s: float = 60.0
) -> AsyncIterator[Broker]:
    """`make_broker`, holding the paper account's lock file for as long as it is used.

    A paper broker's state file has one writer at a time: the weekly council's
    execution and the account sync may run at once, in different processes,
    and two brokers on one file would each overwrite the other's orders. The
    lock is an `flock`, which the kernel releases when its holder dies, so a
    killed run never leaves an account locked. Waiting longer than `wait_s`
    raises `BrokerUnavailableError` (the Prefect task retries).
    """
    if account.broker is not BrokerKind.PAPER:
        yield make_broker(account, settings)
        return
    settings.paper_state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = paper_state_path(account, settings).with_suffix(".lock")
    with lock_path.open("a") as lock:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BrokerUnavailableError(
                        f"paper account {account.name} is busy in another process"
                    ) from None
                await asyncio.sleep(0.05)
        try:
            yield make_broker(account, settings)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def paper_state_path(account: AccountConfig, settings: Settings) -> Path:
    return settings.paper_state_dir / f"{account.name}.json"
