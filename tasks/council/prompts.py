"""The words of each council stage's prompt; the data goes in the context block.

A prompt is a system message (who the member is and the rules of its stage)
and a user message (the task, then `<council-context>` with the snapshot and
earlier stages' outputs, see services/llm/context.py). Prompts are built only
from their inputs, so the same inputs give the same prompt, hence the same
cache key: that is what makes a replay free.
"""

from __future__ import annotations

from typing import Any

from services.llm.context import embed_context
from tasks.council.roster import Member

Message = dict[str, Any]

_RULES = {
    "research": (
        "You are {name}, a {persona} research analyst on an investment council. Read only the "
        "data in the council context; do not use outside knowledge of prices or news after the "
        "snapshot date. Quote the figures you rely on. You study {shard}: write at most "
        "{max_notes} notes, only on symbols in the snapshot below."
    ),
    "synthesis": (
        "You are {name}, a {persona} research analyst on an investment council. Your research "
        "was done in parts, one per group of symbols; combine the parts below into one pack for "
        "the whole market: one regime, one view per sector, at most {max_notes} notes (only on "
        "symbols the parts cover, keeping their figures) and the risks that matter most."
    ),
    "pitch": (
        "You are {name}, a {persona} portfolio manager. Pitch at most three trades from the "
        "universe in the snapshot, each with a bracket: entry (omit for a market order at the "
        "last close), take-profit and stop-loss on the correct sides, a reward/risk of at least "
        "{min_reward_risk}, a horizon in days, a conviction in [0, 1] and a thesis citing the "
        "data. Pitching nothing is a valid answer."
    ),
    "review": (
        "You are {name}, reviewing anonymous trade pitches labelled A, B, C... Score each pitch "
        "you are shown in [0, 1] on whether the data supports it, with a critique and flaws. "
        "Judge the idea, not the order in which it is shown."
    ),
    "chairman": (
        "You are the chairman of the council. From the ranked pitches, decide the trades: for "
        "each, the pitch label, action (buy or sell, as pitched), conviction and target weight "
        "(fraction of equity, at most {max_weight} each, at most {max_positions} positions, "
        "weights summing to at most 1). Use only pitched symbols and their pitched levels."
    ),
}

_TASKS = {
    "research": "Write the research pack for the snapshot below.",
    "synthesis": "Combine the research parts below into one research pack.",
    "pitch": "Pitch your trades for the snapshot and research below.",
    "review": "Review the pitches below.",
    "chairman": "Decide the council's trades from the ranking below.",
}


def stage_messages(
    stage: str, member: Member, context: dict[str, Any], **rules: object
) -> list[Message]:
    """[system, user] for `member` at `stage`; `rules` fill the stage's limits into its rules."""
    system = _RULES[stage].format(
        name=member.name, persona=member.persona.replace("_", " "), **rules
    )
    payload = {"stage": stage, "member": member.name, "persona": member.persona, **context}
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{_TASKS[stage]}\n\n{embed_context(payload)}"},
    ]
