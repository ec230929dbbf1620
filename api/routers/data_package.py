"""The data package of the latest council run: what its members were shown, rebuilt.

A run stores the hash of the bars it saw (`data_hash`) and its universe, not the
snapshot itself; the snapshot is point in time, so it is rebuilt from the stored
bars as of the run's instant and its hash compared with the stored one
(`data_hash_matches`: false means the bars changed since, and the figures here
are not exactly what the council saw). Rebuilding reads the universe's last 60
bars: ~2-4 s for 482 symbols on SQLite, nearly all of it that read, which checking
the hash cannot skip. The correlation matrix is left out of the answer (it costs
little to compute): for 482 symbols it is ~230,000 numbers, 2 MB of JSON a
dashboard does not show; `GET /api/market/snapshot` with the run's day and
symbols gives it.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ReadSession, SettingsDep
from api.schemas.research import ReportOut
from db.queries import council as q
from db.queries.research import latest_run_with_research
from models.enums import RunStatus
from models.errors import NotFoundError
from models.snapshot import NewsSentiment, SectorMetrics, SymbolMetrics

router = APIRouter(prefix="/api/data-package", tags=["data-package"])


class DataPackageOut(BaseModel):
    """The market facts and research notes a council member of the run reasons about."""

    council_run_id: int
    as_of: datetime = Field(description="The instant the run sat as of.")
    status: RunStatus
    data_hash: str | None = Field(description="sha256 of the bars the run saw, as it recorded.")
    data_hash_recomputed: str = Field(description="The same hash of the bars stored now.")
    data_hash_matches: bool = Field(description="false: the stored bars changed since the run.")
    knowledge_cutoff: datetime = Field(description="Bars stamped at or before this were usable.")
    universe: list[str]
    missing: list[str] = Field(description="In the universe, but no bars as of the run.")
    bars_used: int
    symbols: list[SymbolMetrics]
    sectors: list[SectorMetrics]
    research: list[ReportOut] = Field(description="The run's research notes, as written.")
    sentiment: NewsSentiment | None = Field(
        None,
        description="The news sentiment the run's members saw, rebuilt from the items known "
        "at its as_of (null: no scored news then).",
    )


@router.get("/latest")
def latest_data_package(session: ReadSession, settings: SettingsDep) -> DataPackageOut:
    """The newest completed council run's data package (the run `GET /api/research/latest`
    shows): its snapshot rebuilt point in time from the stored bars (per-symbol metrics and
    sector aggregates, no correlation matrix), whether the rebuilt data hash equals the one
    the run recorded, its research notes, and the news sentiment known at its as_of (null
    without scored news). 404 before any run has research, or for a run that recorded no
    universe."""
    run = latest_run_with_research(session, completed=True)
    universe = (run.params or {}).get("universe")
    if not universe:
        raise NotFoundError(
            f"council run {run.id} recorded no universe: its data package cannot be rebuilt"
        )
    from tasks.market_snapshot import build_snapshot  # numpy and pandas: on first use
    from tasks.sentiment import sentiment_params

    snapshot = build_snapshot(session, universe, run.as_of, sentiment=sentiment_params(settings))
    return DataPackageOut(
        council_run_id=run.id,
        as_of=run.as_of,
        status=run.status,
        data_hash=run.data_hash,
        data_hash_recomputed=snapshot.data_hash,
        data_hash_matches=run.data_hash == snapshot.data_hash,
        knowledge_cutoff=snapshot.knowledge_cutoff,
        universe=snapshot.universe,
        missing=snapshot.missing,
        bars_used=snapshot.bars_used,
        symbols=snapshot.symbols,
        sectors=snapshot.sectors,
        research=[ReportOut.model_validate(r) for r in q.research_rows(session, run.id)],
        sentiment=snapshot.news_sentiment,
    )
