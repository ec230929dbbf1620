"""The council's research as a knowledge graph, for the dashboard's graph view.

What is a node and what is an edge is decided once, in tasks/research_graph.py.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadSession
from db.queries import council as q
from db.queries.instruments import sectors_of
from db.queries.research import calls_by_id, latest_run_with_research
from models.research_graph import ResearchGraph
from tasks.research_graph import build_research_graph

router = APIRouter(prefix="/api/graphs", tags=["graphs"])


@router.get("/latest")
def latest_graph(session: ReadSession) -> ResearchGraph:
    """The research of the newest completed council run (the run `GET /api/research/latest`
    shows) as nodes and edges. Nodes: the analysts, the symbols their notes are about, those
    symbols' sectors (`instruments.sector`), and the risks the notes name as themes (one
    node per distinct risk, so a shared risk joins its symbols). Edges: analyst ->
    symbol by the note's stance (`bullish_on`, `bearish_on`, `neutral_on`), analyst ->
    sector by its pack's sector view, symbol -> risk (`has_risk`), symbol -> sector
    (`in_sector`); each carries the report and LLM call that stated it (null for the
    sectors, which are reference data). 404 before any run has research."""
    run = latest_run_with_research(session, completed=True)
    reports = q.research_rows(session, run.id)
    sectors = sectors_of(session, sorted({r.symbol for r in reports}))
    calls = calls_by_id(session, {r.llm_call_id for r in reports if r.llm_call_id is not None})
    return build_research_graph(run, reports, sectors, calls)
