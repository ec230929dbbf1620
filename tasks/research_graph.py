"""Draw one council run's research as a knowledge graph (models/research_graph.py).

What becomes a node, and why:

* analysts and the symbols their notes are about: a note is the relation
  between them, drawn as an edge named for its stance (`bullish_on`, ...),
  carrying the note's report id, LLM call id and confidence;
* sectors, from `instruments.sector` (`in_sector`: reference data as it
  stands today, so no report or call); a symbol without a sector has no such
  edge, rather than an "Unknown" sector joining unrelated companies;
* themes are the *risks* the notes name (`has_risk`, symbol -> risk): a
  note's risks are the only themes it states in words, and the same risk named
  for two symbols (compared case- and spacing-blind) is one node joining
  them. Stances are not themes (they are the edges), and the regime is one
  sentence per analyst, which would join nothing;
* the sector views of each analyst's pack, read from the research call's
  parsed output, become analyst -> sector stance edges (a call, no report).
  A call whose stored output no longer parses as sector views adds none.

Only symbols some note is about appear: a universe of 482 symbols with notes
on 60 draws 60. Pure: the caller reads the rows; same rows, same graph.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from models.council import CouncilRun, ResearchReport
from models.llm_outputs import SectorView, Stance
from models.ops import LLMCall
from models.research_graph import GraphEdge, GraphNode, NodeKind, Relation, ResearchGraph

_KIND_ORDER: dict[NodeKind, int] = {"analyst": 0, "symbol": 1, "sector": 2, "risk": 3}
_STANCE_RELATION: dict[str, Relation] = {
    Stance.BULLISH: "bullish_on",
    Stance.BEARISH: "bearish_on",
    Stance.NEUTRAL: "neutral_on",
}
_SECTOR_VIEWS: TypeAdapter[list[SectorView]] = TypeAdapter(list[SectorView])


def build_research_graph(
    run: CouncilRun,
    reports: Sequence[ResearchReport],
    sectors: Mapping[str, str | None],
    calls: Sequence[LLMCall],
) -> ResearchGraph:
    """The graph of `run`'s `reports`; `sectors` maps symbols to their sector, `calls` are
    the research calls that wrote the reports (for their packs' sector views)."""
    nodes: dict[str, GraphNode] = {}
    edges: list[GraphEdge] = []
    for report in reports:
        analyst = _node(nodes, "analyst", report.analyst)
        symbol = _node(nodes, "symbol", report.symbol)
        edges.append(
            GraphEdge(
                source=analyst,
                target=symbol,
                relation=_STANCE_RELATION.get(str(report.findings.get("stance")), "notes_on"),
                report_id=report.id,
                llm_call_id=report.llm_call_id,
                confidence=_probability(report.findings.get("confidence")),
            )
        )
        for risk in _texts(report.findings.get("risks")):
            edges.append(
                GraphEdge(
                    source=symbol,
                    target=_node(nodes, "risk", risk),
                    relation="has_risk",
                    report_id=report.id,
                    llm_call_id=report.llm_call_id,
                )
            )
    for name in sorted({r.symbol for r in reports}):
        if sector := sectors.get(name):
            edges.append(
                GraphEdge(
                    source=_node(nodes, "symbol", name),
                    target=_node(nodes, "sector", sector),
                    relation="in_sector",
                    report_id=None,
                    llm_call_id=None,
                )
            )
    edges.extend(_sector_view_edges(nodes, reports, calls))
    ordered = sorted(nodes.values(), key=lambda n: (_KIND_ORDER[n.kind], n.id))
    return ResearchGraph(as_of=run.as_of, council_run_id=run.id, nodes=ordered, edges=edges)


def _sector_view_edges(
    nodes: dict[str, GraphNode], reports: Sequence[ResearchReport], calls: Sequence[LLMCall]
) -> list[GraphEdge]:
    analyst_of = {r.llm_call_id: r.analyst for r in reports if r.llm_call_id is not None}
    edges = []
    for call in sorted(calls, key=lambda c: c.id):
        if call.id not in analyst_of or not call.parsed_output:
            continue
        try:
            views = _SECTOR_VIEWS.validate_python(call.parsed_output.get("sector_views") or [])
        except ValidationError:
            continue  # stored under an older schema: the notes still draw, the views do not
        analyst = _node(nodes, "analyst", analyst_of[call.id])
        for view in views:
            edges.append(
                GraphEdge(
                    source=analyst,
                    target=_node(nodes, "sector", view.sector),
                    relation=_STANCE_RELATION[view.stance],
                    report_id=None,
                    llm_call_id=call.id,
                )
            )
    return edges


def _node(nodes: dict[str, GraphNode], kind: NodeKind, name: str) -> str:
    """The id of the node of `kind` named `name`, added the first time it is seen. Risks are
    keyed case- and spacing-blind and labelled as first written."""
    label = " ".join(name.split())
    node_id = f"{kind}:{label.casefold() if kind == 'risk' else label}"
    if node_id not in nodes:
        nodes[node_id] = GraphNode(id=node_id, kind=kind, label=label)
    return node_id


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str) and v.strip()]


def _probability(value: Any) -> float | None:
    """A note's confidence as a float in [0, 1] (stored notes hold a number; hand-written
    rows may hold its text), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and 0 <= number <= 1 else None
