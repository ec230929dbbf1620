"""The machine-readable part of a council prompt, shared by the stages and the offline analyst.

Every council prompt ends its last user message with one block

    <council-context>
    {"stage": "research", "member": "analyst-1", "persona": "momentum", ...}
    </council-context>

holding the data the member must ground its answer in (the market snapshot,
earlier stages' outputs). A language model reads it as part of the prompt;
the offline analyst parses it and computes its answer from it. Keys:

* `stage`: "research" | "pitch" | "review" | "chairman"
* `member`, `persona`: who answers, and its style (free text for a model;
  the offline analyst knows a few: momentum, mean_reversion, risk_parity,
  contrarian, and falls back to momentum)
* `snapshot`: a `models.snapshot.MarketSnapshot` as JSON
* `research`: the research packs so far, `[{"member": ..., "pack": ResearchPack}]`
* `pitches`: pitches shown anonymously, `[{"label": "A", "pitch": PitchProposal}]`
* `ranking`: for the chairman, `[{"label": "A", "score": 0.83, "reviews": 3}]`,
  best first, with `max_positions` and `max_weight`

Not here: the wording of prompts (the stages own it) and any I/O.
"""

from __future__ import annotations

import json
from typing import Any

OPEN = "<council-context>"
CLOSE = "</council-context>"


def embed_context(payload: dict[str, Any]) -> str:
    """The block to append to a prompt. Keys sorted, so equal data gives an equal prompt."""
    return f"{OPEN}\n{json.dumps(payload, sort_keys=True, default=str)}\n{CLOSE}"


def extract_context(text: str) -> dict[str, Any] | None:
    """The payload of the last block in `text`, or None if there is none or it is not JSON."""
    end = text.rfind(CLOSE)
    start = text.rfind(OPEN, 0, end) if end >= 0 else -1
    if start < 0:
        return None
    try:
        payload = json.loads(text[start + len(OPEN) : end])
    except json.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None
