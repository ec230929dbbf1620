"""How much prompt a call may carry: the model's window, less the answer's tokens and a
margin, counted one way for everyone. The stages size their prompts with a `PromptRoom`
and the gateway refuses, with the same count, what does not fit: a refusal there means a
stage got it wrong, never a different count.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from services.llm import structured
from services.llm.catalog import ModelFacts
from services.llm.hashing import Message


@dataclass(frozen=True)
class PromptRoom:
    """The most tokens a prompt may have (None: no limit), and how they are counted.

    The schema's own text is counted in both ways of asking: in the prompt it is a
    message; in `response_format` providers count it against the window too."""

    limit: int | None
    facts: ModelFacts
    schema_message: Message
    max_tokens: int

    def tokens(self, messages: list[Message]) -> int:
        return self.facts.count_tokens([self.schema_message, *messages])

    def fits(self, messages: list[Message]) -> bool:
        return self.limit is None or self.tokens(messages) <= self.limit

    def problem(self, messages: list[Message]) -> str | None:
        """Why `messages` cannot be sent to this model, with the numbers; None if they fit."""
        if self.limit is None:
            return None
        tokens = self.tokens(messages)
        if tokens <= self.limit:
            return None
        facts = self.facts
        return (
            f"prompt of {tokens:,} tokens does not fit {facts.name}: window {facts.window:,}, "
            f"{self.max_tokens:,} kept for the answer and {facts.spec.token_margin:.0%} "
            f"margin leave {self.limit:,}"
        )


def prompt_room(facts: ModelFacts, schema: type[BaseModel], max_tokens: int) -> PromptRoom:
    """The room of a call to the model of `facts` for `schema`, `max_tokens` kept back."""
    return PromptRoom(
        facts.prompt_room(max_tokens),
        facts,
        structured.schema_instruction(schema),
        facts.answer_tokens(max_tokens),
    )
