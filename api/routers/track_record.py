"""The council judged by outcome, read-only: each member's rolling track record, and the
council backtests with their sittings and each book's trades.

A council backtest is started as a `council_backtest` job (`POST /api/jobs`) or by
`aitrader council backtest`; the flow stores it (flows/council_backtest.py) and scores
every pitch and reviewer it sat, and these routes read what it stored. Pitch outcomes
and reviewer scores belong to the council runs they judge, so a member's record spans
every backtest (and week) scored so far.

Included before the council router: its `/api/council/{run_id}` would otherwise take
`members` and `backtests` for run ids (and answer 422).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import ReadSession
from api.errors import problem_responses
from api.pagination import Instant, Page, PageDep
from api.schemas.track_record import (
    Book,
    BookTradeOut,
    BookTradesOut,
    By,
    CouncilBacktestDetailOut,
    CouncilBacktestOut,
    SkillOut,
    TrackRecordOut,
)
from db.queries import track_record as tr
from models.enums import RunStatus

router = APIRouter(prefix="/api/council", tags=["council"])

BacktestId = Annotated[int, Path(ge=1, le=2**53, description="Council backtest id.")]
MAX_WINDOW = 520  # ten years of weekly sittings


@router.get("/members", responses=problem_responses(401, 403, 422))
def track_record(
    session: ReadSession,
    window: Annotated[
        int, Query(ge=1, le=MAX_WINDOW, description="Each member's newest scored sittings.")
    ] = 12,
    by: Annotated[
        By, Query(description="member: one line a seat; model: a model's seats summed.")
    ] = "member",
    until: Annotated[
        Instant | None, Query(description="As the record stood at this instant (ISO 8601).")
    ] = None,
) -> TrackRecordOut:
    """Each member's (or model's) rolling skill over its last `window` scored sittings:
    hit rate and mean excess return of its pitches over the universe, how often the
    take-profit or the stop hit first, and how well its review scores ranked what followed.
    Empty before any sitting was scored (a council backtest scores its sittings)."""
    rows = tr.track_record(session, window=window, until=until, by=by)
    return TrackRecordOut(
        window=window, by=by, until=until, members=[SkillOut.model_validate(r) for r in rows]
    )


@router.get("/backtests", responses=problem_responses(401, 403, 422))
def council_backtests(
    session: ReadSession,
    page: PageDep,
    job: Annotated[int | None, Query(ge=1, le=2**53, description="The job that ran it.")] = None,
    status: Annotated[RunStatus | None, Query(description="Only backtests in this status.")] = None,
) -> Page[CouncilBacktestOut]:
    """Council backtests newest first by creation (`since`/`until` on it); a running one
    shows its sittings done so far, and no metrics yet."""
    rows = tr.council_backtests(
        session,
        job_id=job,
        status=status,
        since=page.since,
        until=page.until,
        limit=page.fetch,
        offset=page.offset,
    )
    return Page.of([CouncilBacktestOut.model_validate(row) for row in rows], page)


@router.get("/backtests/{backtest_id}", responses=problem_responses(401, 403, 404, 422))
def council_backtest(backtest_id: BacktestId, session: ReadSession) -> CouncilBacktestDetailOut:
    """One council backtest: its parameters, progress and spend, each book's metrics, the
    equity curves, the bias and cutoff report, and every sitting with its council run.
    404 for an unknown id."""
    row = tr.get_council_backtest(session, backtest_id)
    return CouncilBacktestDetailOut.of(row, tr.sittings_of(session, backtest_id))


@router.get("/backtests/{backtest_id}/trades", responses=problem_responses(401, 403, 404, 422))
def council_backtest_trades(
    backtest_id: BacktestId,
    session: ReadSession,
    book: Annotated[Book, Query(description="council, buy_and_hold or momentum.")] = "council",
) -> BookTradesOut:
    """One book's lots in decision order: entry and exit, P&L, why each ended, and the
    orders its risk checks refused. 404 for an unknown backtest."""
    tr.get_council_backtest(session, backtest_id)
    trades = tr.book_trades(session, backtest_id, book)
    return BookTradesOut(
        backtest_id=backtest_id,
        book=book,
        trades=[BookTradeOut.model_validate(t) for t in trades],
    )
