"""The council's research drawn as a knowledge graph: who said what about which symbol.

Node ids are `kind:name` (`symbol:AAPL`, `sector:Energy`, `analyst:analyst-value`,
`risk:earnings in 8 weeks`), so a client can join the nodes of two graphs. Every
edge says where it came from: the research report and the LLM call that stated
it, or neither for reference data (a symbol's sector comes from `instruments`).
tasks/research_graph.py builds it; this module only names the shapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NodeKind = Literal["analyst", "symbol", "sector", "risk"]
Relation = Literal["in_sector", "bullish_on", "bearish_on", "neutral_on", "notes_on", "has_risk"]


class GraphNode(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="`kind:name`, e.g. `symbol:AAPL`.")
    kind: NodeKind
    label: str


class GraphEdge(BaseModel):
    """One stated relation. `bullish_on`/`bearish_on`/`neutral_on` run from an analyst to a
    symbol (a note's stance) or to a sector (its pack's sector view); `notes_on` is a note
    whose stance is missing or not one of those; `has_risk` runs from a symbol to a risk a
    note names; `in_sector` from a symbol to its sector (reference data, no report)."""

    model_config = ConfigDict(frozen=True)

    source: str
    target: str
    relation: Relation
    report_id: int | None = Field(description="The research report that states it.")
    llm_call_id: int | None = Field(description="The LLM call that wrote it.")
    confidence: float | None = Field(None, description="The note's confidence, for stances.")


class ResearchGraph(BaseModel):
    """The research of one council run as nodes and edges."""

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    council_run_id: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]
