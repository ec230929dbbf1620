"""The one call path for every model: `LLMGateway.complete(messages, schema, model=...)`.

A call goes, in order: response cache (a recorded usable answer for the same
model, messages, schema and parameters is returned at $0, and recorded again
as a hit, so a replayed run has its own audit trail; with `cache_only` a miss
ends here, as "not in cache", and nothing is ever sent) -> the context window
(a prompt that does not leave room for the answer in the model's window is
refused with the numbers, not sent) -> budget reservation (worst case;
`BudgetExceededError` before anything is sent) -> the model's or provider's
concurrency slot -> litellm, with retries on 429 (Retry-After honoured),
timeouts and 5xx -> parse and validate into `schema` -> on failure, one
repair round showing the model its validation error -> one `llm_calls`
record, whatever happened.

`model` is a name in the `ModelCatalog` (services/llm/catalog.py): the models
file's name for a model, or any litellm model name. Its facts (window, output
limit, prices, timeout, tries, concurrency, server and key) come from there.

What it returns: a `CallResult` whose `value` is the validated object, or
None when the answer stayed invalid or the provider stayed unreachable (the
stage then abstains for that member). Invalid output is never returned as
if valid. What it raises: `BudgetExceededError` only; the run must stop.

Concurrency: a per-provider limit inside this process (docs/decisions/0007
says why not a Prefect concurrency limit). Thread-safe: Prefect may run a
stage's tasks on several threads, each with its own event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

import litellm
from pydantic import BaseModel

from models.enums import LLMCallStatus
from models.errors import BudgetExceededError
from models.llm import LLMCallRecord
from services.llm import structured
from services.llm.budget import RunBudget
from services.llm.catalog import ModelCatalog, ModelFacts
from services.llm.hashing import Message, cache_key, prompt_hash
from services.llm.limits import ProviderLimits
from services.llm.model_facts import cost_of, supports_schema, worst_case_usd
from services.llm.retry import RetryPolicy, is_retryable
from services.llm.store import CallStore
from services.llm.streaming import TextSink, TextStream, streamed_completion
from services.llm.window import PromptRoom, prompt_room

logger = logging.getLogger(__name__)

# litellm prints "Give Feedback / Get Help" to stdout on every error; library code must not.
litellm.suppress_debug_info = True

T = TypeVar("T", bound=BaseModel)
Mode = Literal["auto", "schema", "prompt"]
ZERO = Decimal(0)
SLOT_POLL_S = 0.01  # against LLM latencies of a second or more
DEFAULT_TIMEOUT_S = 60.0
NOT_IN_CACHE = "not in cache: a replay asks no model"


@dataclass(frozen=True)
class CallContext:
    """Who is asking: the run, the council stage and the member (for the record)."""

    stage: str
    member: str
    run_id: int | None = None


@dataclass(frozen=True)
class CallResult(Generic[T]):
    value: T | None
    status: LLMCallStatus
    call_id: int
    cost_usd: Decimal
    cache_hit: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass
class _Exchange:
    """What the network side of a call produced, summed over its attempts."""

    raw: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = ZERO
    attempts: int = 0


class LLMGateway:
    def __init__(
        self,
        store: CallStore,
        *,
        budget: RunBudget | None = None,
        retry: RetryPolicy | None = None,
        limits: ProviderLimits | None = None,
        use_cache: bool = True,
        cache_only: bool = False,
        catalog: ModelCatalog | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        seed: int = 0,
    ) -> None:
        """`cache_only`: answer from recorded responses alone (a replay): never a request.
        Without a `catalog`, models are litellm's, served at `api_base` with `api_key`."""
        self._store = store
        self.budget = budget
        self._retry = retry or RetryPolicy()
        self._limits = limits or ProviderLimits()
        self._use_cache = use_cache or cache_only
        self._cache_only = cache_only
        self.catalog = catalog or ModelCatalog(api_base=api_base, api_key=api_key)
        self._rng = random.Random(seed)  # noqa: S311 - backoff jitter, not secrets

    @property
    def cache_only(self) -> bool:
        return self._cache_only

    def facts(self, model: str) -> ModelFacts:
        """What the gateway knows of `model`: window, limits, prices (for prompt sizing)."""
        return self.catalog.facts(model)

    def room(self, model: str, schema: type[BaseModel], max_tokens: int) -> PromptRoom:
        """How much prompt a call to `model` for `schema` may carry, and how it is counted:
        what a stage sizes its prompts with, so the gateway never has to refuse one."""
        return prompt_room(self.facts(model), schema, max_tokens)

    async def complete(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        model: str,
        ctx: CallContext,
        temperature: float = 0.0,
        max_tokens: int = 2000,
        timeout_s: float | None = None,
        mode: Mode = "auto",
        on_text: TextSink | None = None,
    ) -> CallResult[T]:
        """`on_text`, if given, receives the first answer's text as it arrives (streamed from
        providers that stream; in one piece from the offline provider). A repair round is not
        streamed, and a cache hit sends nothing: the caller has the value at once.
        `max_tokens` is capped by the model's output limit; `timeout_s` defaults to the
        model's (60 s)."""
        facts = self.facts(model)
        model, provider = facts.model, facts.provider
        max_tokens = facts.answer_tokens(max_tokens)
        params = {"temperature": temperature, "max_tokens": max_tokens}
        key = cache_key(model, messages, schema, params)
        base = {
            "run_id": ctx.run_id,
            "stage": ctx.stage,
            "member": ctx.member,
            "model": model,
            "provider": provider,
            "schema_name": schema.__name__,
            "prompt_hash": prompt_hash(messages),
            "cache_key": key,
            "messages": messages,
            "params": params,
        }
        if self._use_cache:
            hit = await self._from_cache(key, schema, base)
            if hit is not None:
                return hit

        started = time.perf_counter()
        if self._cache_only:
            return await self._refused(base, NOT_IN_CACHE, started)
        use_schema = mode == "schema" or (mode == "auto" and supports_schema(model))
        request = messages if use_schema else [structured.schema_instruction(schema), *messages]
        extra: dict[str, Any] = {"timeout": timeout_s or facts.spec.timeout_s, **params}
        extra["timeout"] = extra["timeout"] or DEFAULT_TIMEOUT_S
        if use_schema:
            extra["response_format"] = structured.response_format(schema)
        room = prompt_room(facts, schema, max_tokens)
        too_big = room.problem(messages)
        if too_big is not None:
            return await self._refused(base, too_big, started)
        exchange = _Exchange()
        value: T | None = None
        error: str | None = None
        status = LLMCallStatus.ERROR
        try:
            await self._send(facts, request, extra, exchange, on_text)
            try:
                value, status = structured.parse(exchange.raw, schema), LLMCallStatus.OK
            except ValueError as first:
                error = structured.describe(first)
                asked_again = structured.repair_request(exchange.raw, error)
                repair = [*request, *asked_again]
                if (too_big := room.problem([*messages, *asked_again])) is not None:
                    raise _GaveUpError(f"no repair round: {too_big}") from None
                await self._send(facts, repair, extra, exchange)
                try:
                    value = structured.parse(exchange.raw, schema)
                    status, error = LLMCallStatus.REPAIRED, None
                except ValueError as second:
                    status = LLMCallStatus.PARSE_ERROR
                    error = f"{error} | after repair: {structured.describe(second)}"
        except _GaveUpError as exc:
            status, error = LLMCallStatus.ERROR, f"{error} | {exc}" if error else str(exc)
        except BudgetExceededError as exc:
            if exchange.attempts:  # the repair did not fit: record what the first answer cost
                await asyncio.to_thread(
                    self._store.record,
                    self._record(base, exchange, None, LLMCallStatus.ERROR, str(exc), started),
                )
            raise
        record = self._record(base, exchange, value, status, error, started)
        call_id = await asyncio.to_thread(self._store.record, record)
        if value is None:
            logger.warning(
                "llm.call_failed",
                extra={"model": model, "stage": ctx.stage, "member": ctx.member, "error": error},
            )
        return CallResult(value, status, call_id, exchange.cost, False, error)

    async def _refused(self, base: dict[str, Any], why: str, started: float) -> CallResult[T]:
        """A call never sent (not in the cache of a replay, or a prompt too big): recorded
        as an error with its reason, so the member abstains with that cause."""
        record = self._record(base, _Exchange(), None, LLMCallStatus.ERROR, why, started)
        call_id = await asyncio.to_thread(self._store.record, record)
        logger.warning(
            "llm.call_refused",
            extra={"model": base["model"], "stage": base["stage"], "error": why},
        )
        return CallResult(None, LLMCallStatus.ERROR, call_id, ZERO, False, why)

    @staticmethod
    def _record(
        base: dict[str, Any],
        exchange: _Exchange,
        value: BaseModel | None,
        status: LLMCallStatus,
        error: str | None,
        started: float,
    ) -> LLMCallRecord:
        return LLMCallRecord(
            **base,
            raw_output=exchange.raw,
            parsed_output=value.model_dump(mode="json") if value is not None else None,
            status=status,
            error=error,
            prompt_tokens=exchange.prompt_tokens,
            completion_tokens=exchange.completion_tokens,
            cost_usd=exchange.cost,
            latency_ms=round((time.perf_counter() - started) * 1000),
            attempts=exchange.attempts,
        )

    async def _from_cache(
        self, key: str, schema: type[T], base: dict[str, Any]
    ) -> CallResult[T] | None:
        cached = await asyncio.to_thread(self._store.find_cached, key)
        if cached is None or cached.parsed_output is None:
            return None
        try:
            value = schema.model_validate(cached.parsed_output)
        except ValueError:  # the schema changed since: the old answer no longer counts
            return None
        record = LLMCallRecord(
            **base,
            raw_output=cached.raw_output,
            parsed_output=cached.parsed_output,
            status=cached.status,
            prompt_tokens=cached.prompt_tokens,
            completion_tokens=cached.completion_tokens,
            cost_usd=ZERO,
            cache_hit=True,
            attempts=0,
        )
        call_id = await asyncio.to_thread(self._store.record, record)
        return CallResult(value, cached.status, call_id, ZERO, True)

    async def _send(
        self,
        facts: ModelFacts,
        messages: list[Message],
        extra: dict[str, Any],
        exchange: _Exchange,
        on_text: TextSink | None = None,
    ) -> None:
        """One answer from the model into `exchange`, retrying what is worth retrying.

        A streamed answer is retried only if it failed before any text was passed on: the
        listener must never see an answer start twice."""
        model, provider = facts.model, facts.provider
        reservation = self._reserve(facts, messages, int(extra["max_tokens"]))
        spent = ZERO
        stream = TextStream(on_text) if on_text is not None and provider != "offline" else None
        policy = self._retry
        if facts.spec.tries is not None:
            policy = replace(policy, max_attempts=facts.spec.tries)
        try:
            for attempt in range(1, policy.max_attempts + 1):
                try:
                    response = await self._acompletion(facts, messages, extra, stream)
                except Exception as exc:  # classified below, never swallowed
                    if stream is not None and stream.started:
                        raise _GaveUpError(
                            f"the stream broke after it started: {type(exc).__name__}: {exc}"
                        ) from exc
                    if not is_retryable(exc):
                        raise _GaveUpError(f"{type(exc).__name__}: {exc}") from exc
                    if attempt == policy.max_attempts:
                        raise _GaveUpError(
                            f"gave up after {attempt} tries: {type(exc).__name__}: {exc}"
                        ) from exc
                    delay = policy.delay(attempt, exc, self._rng)
                    logger.info(
                        "llm.retry",
                        extra={"model": model, "try": attempt, "delay_s": round(delay, 3)},
                    )
                    await asyncio.sleep(delay)
                    continue
                usage = getattr(response, "usage", None)
                prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
                completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
                exchange.prompt_tokens += prompt_tokens
                exchange.completion_tokens += completion_tokens
                priced = facts.cost_usd(prompt_tokens, completion_tokens)
                spent = priced if priced is not None else cost_of(response)
                exchange.cost += spent
                exchange.attempts += 1
                exchange.raw = response.choices[0].message.content
                if on_text is not None and stream is None and exchange.raw:
                    await on_text(exchange.raw)  # a provider that does not stream: one piece
                return
        finally:
            if self.budget is not None:
                self.budget.settle(reservation, spent)

    async def _acompletion(
        self,
        facts: ModelFacts,
        messages: list[Message],
        extra: dict[str, Any],
        stream: TextStream | None = None,
    ) -> Any:
        provider = facts.provider
        concurrency = facts.spec.concurrency
        sem = (
            self._limits.semaphore(f"model:{facts.name}", concurrency)
            if concurrency
            else self._limits.semaphore(provider)
        )
        # Polled, not `to_thread(sem.acquire)`: a call cancelled while waiting (a budget stop
        # cancels its stage) must not acquire a slot afterwards that nobody would release.
        while not sem.acquire(blocking=False):
            await asyncio.sleep(SLOT_POLL_S)
        options = {
            "model": facts.model,
            "messages": messages,
            "num_retries": 0,  # retries are ours: one policy, visible in the record
            "api_base": facts.spec.api_base if provider != "offline" else None,
            "api_key": facts.api_key if provider != "offline" else None,
            **extra,
        }
        try:
            if stream is None:
                return await litellm.acompletion(**options)
            return await streamed_completion(options, stream)
        finally:
            sem.release()

    def _reserve(self, facts: ModelFacts, messages: list[Message], max_tokens: int) -> Decimal:
        if self.budget is None:
            return ZERO
        worst = facts.worst_case_usd(facts.count_tokens(messages), max_tokens)
        if worst is None:
            worst = worst_case_usd(facts.model, messages, max_tokens)
        return self.budget.reserve(worst)


class _GaveUpError(Exception):
    """The provider could not give an answer (retries exhausted or a request it refuses)."""
