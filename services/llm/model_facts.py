"""What litellm knows about a model: its provider, whether it takes a JSON schema, what a
call can cost at most and what one did cost. Read from litellm's cost map, which is pinned
with the installed version (LITELLM_LOCAL_MODEL_COST_MAP)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import litellm

from models.errors import ConfigurationError

Message = dict[str, Any]
ZERO = Decimal(0)


def provider_of(model: str) -> str:
    """litellm's provider for `model` ("openai", "anthropic", "offline", ...)."""
    try:
        return str(litellm.get_llm_provider(model=model)[1])
    except Exception:  # unknown to litellm: the prefix is the best name we have
        return model.split("/", 1)[0] if "/" in model else "unknown"


def supports_schema(model: str) -> bool:
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # litellm raises for models it does not know
        return False


def worst_case_usd(model: str, messages: list[Message], max_tokens: int) -> Decimal:
    """The most a call can cost: its prompt plus `max_tokens` of answer, at litellm's prices."""
    try:
        prompt_tokens = litellm.token_counter(model=model, messages=messages)
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=max_tokens
        )
    except Exception as exc:  # no price: a budget cannot be enforced
        raise ConfigurationError(
            f"no price for model {model!r} in litellm's cost map, so a budget cannot be "
            "enforced: register its price or run without a budget"
        ) from exc
    return Decimal(str(prompt_cost)) + Decimal(str(completion_cost))


def cost_of(response: Any) -> Decimal:
    """What litellm's cost map says a response cost; 0 if the model has no price."""
    try:
        return Decimal(str(litellm.completion_cost(completion_response=response)))
    except Exception:  # unpriced model (no budget set, or it was refused)
        return ZERO
