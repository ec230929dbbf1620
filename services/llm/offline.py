"""The offline analyst: AITrader's default council member, served as a litellm custom provider.

When no model is configured the council still runs, on deterministic,
data-grounded members that compute their answers from the market data in the
prompt's `<council-context>` block (see `services.llm.context`) and answer in
the stage's schema: research -> `ResearchPack`, pitch -> `PitchBook`, review
-> `PeerReviewBatch`, chairman -> `ChairmanVerdict`. The gateway calls them
through `litellm.acompletion(model="offline/momentum", messages=...)` like any
model, so parsing, cost and audit take the same path as a real one.

Models (`OFFLINE_MODELS`): `offline/momentum`, `offline/mean_reversion`,
`offline/risk_parity`, `offline/contrarian` answer in that persona;
`offline/analyst` takes the persona the context names (momentum if it names
none it knows); `offline/assistant` is the chat assistant (offline_assistant.py).
Every answer is a constructed, validated pydantic object
dumped to JSON, so it cannot be invalid; equal prompts give byte-identical
content (no randomness, no clock, everything sorted). Responses name the
offline model, carry token counts (litellm's tokenizer) and cost 0: the text
says "offline analyst", nothing pretends to be a language model.

Not here: prompts' wording, retries, caching, budgets (the gateway's), and
streaming (not served: an offline answer is one piece anyway).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import litellm
from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler, HTTPHandler
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import Choices, GenericStreamingChunk, ModelResponse, Usage
from litellm.utils import custom_llm_setup

from services.llm.offline_assistant import answer_chat_prompt
from services.llm.offline_chairman import decide
from services.llm.offline_context import (
    CouncilContext,
    OfflineAnalystError,
    OfflineContextError,
    Stage,
    UnknownOfflineModelError,
    read_council_context,
)
from services.llm.offline_pitch import write_pitches
from services.llm.offline_research import merge_research, write_research
from services.llm.offline_review import review_pitches
from services.llm.offline_signals import Persona

__all__ = [
    "OFFLINE_MODELS",
    "PROVIDER",
    "OfflineAnalyst",
    "OfflineAnalystError",
    "OfflineContextError",
    "Persona",
    "UnknownOfflineModelError",
    "answer_council_prompt",
    "register_offline_provider",
]

PROVIDER = "offline"
_NO_STREAMING = "streaming is not served (an offline answer is one piece); call without stream"
GENERIC = "analyst"
ASSISTANT = "assistant"  # the chat assistant (services/llm/offline_assistant.py)
OFFLINE_MODELS = tuple(f"{PROVIDER}/{name}" for name in (*sorted(Persona), GENERIC, ASSISTANT))
_FREE = {
    "input_cost_per_token": 0.0,
    "output_cost_per_token": 0.0,
    "cache_creation_input_token_cost": 0.0,
    "cache_read_input_token_cost": 0.0,
    "litellm_provider": PROVIDER,
    "mode": "chat",
    "max_tokens": 1_000_000,
    "max_input_tokens": 1_000_000,
    "max_output_tokens": 1_000_000,
}


def register_offline_provider() -> None:
    """Make `offline/...` models callable through litellm, at zero cost. Idempotent.

    Adds an `OfflineAnalyst` to `litellm.custom_provider_map` under
    `PROVIDER` (refusing if another handler holds that name), registers a zero
    price for every `OFFLINE_MODELS` entry so `litellm.completion_cost` is 0.0,
    and runs litellm's provider setup so `offline` is a known provider before
    the first call. litellm keeps all three in module state: call this once at
    start-up, before the gateway's first call.
    """
    providers = litellm.custom_provider_map
    holders = [item["custom_handler"] for item in providers if item["provider"] == PROVIDER]
    if not holders:
        providers.append({"provider": PROVIDER, "custom_handler": OfflineAnalyst()})
    elif not all(isinstance(h, OfflineAnalyst) for h in holders):
        raise OfflineAnalystError(
            f"litellm provider {PROVIDER!r} is already taken by {type(holders[0]).__name__}"
        )
    unpriced = {
        model: dict(_FREE)
        for model in OFFLINE_MODELS
        if litellm.model_cost.get(model, {}).get("output_cost_per_token") != 0.0
    }
    if unpriced:
        litellm.register_model(unpriced)
    custom_llm_setup()  # type: ignore[no-untyped-call]


def answer_council_prompt(model: str, messages: list[Any]) -> str:
    """The offline answer to a council prompt, as the stage schema's JSON. Pure.

    Raises `UnknownOfflineModelError` for a model it does not serve and
    `OfflineContextError` when the prompt has no usable context block.
    """
    name = _model_name(model)
    if name == ASSISTANT:
        return answer_chat_prompt(messages)
    context = read_council_context(messages)
    persona = _persona(name, context)
    if context.stage is Stage.RESEARCH:
        packs = [r.pack for r in context.research]
        return write_research(persona, context.snapshot, packs).model_dump_json()
    if context.stage is Stage.SYNTHESIS:
        packs = [r.pack for r in context.research]
        return merge_research(context.snapshot, packs).model_dump_json()
    if context.stage is Stage.PITCH:
        packs = [r.pack for r in context.research]
        return write_pitches(persona, context.snapshot, packs).model_dump_json()
    if context.stage is Stage.REVIEW:
        return review_pitches(context.snapshot, context.pitches).model_dump_json()
    verdict = decide(
        context.snapshot,
        context.pitches,
        context.ranking,
        context.max_positions,
        context.max_weight,
    )
    return verdict.model_dump_json()


class OfflineAnalyst(CustomLLM):
    """The litellm handler: `completion` and `acompletion` answer with `answer_council_prompt`.

    litellm passes `model` without the `offline/` prefix and a fresh
    `model_response` to fill; request options (temperature, response_format,
    max_tokens) are accepted and ignored: the answer is always the stage's
    schema, computed the same way.
    """

    def completion(
        self,
        model: str,
        messages: list[Any],
        api_base: str,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Callable[..., Any],
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: dict[str, Any] | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: HTTPHandler | None = None,
    ) -> ModelResponse:
        return _respond(model, messages, model_response)

    async def acompletion(
        self,
        model: str,
        messages: list[Any],
        api_base: str,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Callable[..., Any],
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: dict[str, Any] | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: AsyncHTTPHandler | None = None,
    ) -> ModelResponse:
        # CPU-bound and quick (well under a millisecond per symbol): no thread hop needed.
        return _respond(model, messages, model_response)

    def streaming(self, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        raise OfflineAnalystError(_NO_STREAMING)

    # litellm iterates what astreaming returns (an async generator), whatever its annotation says.
    async def astreaming(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        raise OfflineAnalystError(_NO_STREAMING)
        yield  # unreachable: makes this an async generator, as litellm expects


def _respond(model: str, messages: list[Any], model_response: ModelResponse) -> ModelResponse:
    full_name = f"{PROVIDER}/{_model_name(model)}"
    content = answer_council_prompt(full_name, messages)
    choice = model_response.choices[0]
    if not isinstance(choice, Choices):
        raise OfflineAnalystError(_NO_STREAMING)
    choice.message.content = content
    choice.finish_reason = "stop"
    model_response.model = full_name
    prompt_tokens = litellm.token_counter(model=full_name, messages=messages)
    completion_tokens = litellm.token_counter(model=full_name, text=content)
    model_response.usage = Usage(  # type: ignore[attr-defined]
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
    return model_response


def _model_name(model: str) -> str:
    name = model.removeprefix(f"{PROVIDER}/")
    if f"{PROVIDER}/{name}" not in OFFLINE_MODELS:
        raise UnknownOfflineModelError(
            f"no offline model {model!r}; known: {', '.join(OFFLINE_MODELS)}"
        )
    return name


def _persona(name: str, context: CouncilContext) -> Persona:
    """The persona the model names; `offline/analyst` follows the context, else momentum."""
    if name != GENERIC:
        return Persona(name)
    known = {p.value for p in Persona}
    return Persona(context.persona) if context.persona in known else Persona.MOMENTUM
