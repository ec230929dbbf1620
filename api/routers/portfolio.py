"""The portfolio's value now (marked at live prices) and its history.

Both read our books. The value now is cash from each account's latest
snapshot plus the positions marked at the live price, else the last stored
close (api/valuation.py). The history is the snapshots themselves, the
equity curve, and it is the one list here that is OLDEST first: a curve is
drawn left to right, and paging on with `next_offset` continues it in time.
Ask for the recent part with `since`.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadSession, RuntimeDep
from api.pagination import Page, PageDep
from api.schemas.trading import AccountFilter, PortfolioOut, SnapshotOut, paging
from api.valuation import portfolio
from db.queries.portfolio import snapshot_history

router = APIRouter(prefix="/api/portfolio", tags=["portfolio"])


@router.get("")
def get_portfolio(
    session: ReadSession, runtime: RuntimeDep, account: AccountFilter = None
) -> PortfolioOut:
    """Cash, positions marked to market with unrealised P&L, positions value and total
    value, for one account or every account summed. Symbols with no price at all are
    listed in `unpriced` and left out of the sums."""
    return portfolio(session, runtime.cache, account)


@router.get("/history")
def get_portfolio_history(
    session: ReadSession, page: PageDep, account: AccountFilter = None
) -> Page[SnapshotOut]:
    """Portfolio snapshots (cash, positions value, equity, buying power), OLDEST first, one
    row per account and instant; `since`/`until` on the snapshot's instant."""
    rows = snapshot_history(session, paging(page), account=account)
    return Page.of([SnapshotOut.of(row.snapshot, row.account) for row in rows], page)
