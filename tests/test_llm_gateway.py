"""The LLM gateway through litellm's real client, against a loopback fake OpenAI server.

Every test records into the real `llm_calls` table, on SQLite and on Postgres.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select

from db.engine import make_engine, make_session_factory
from db.migrate import upgrade
from db.queries.llm_calls import SqlCallStore
from models.enums import LLMCallStatus
from models.errors import BudgetExceededError, ConfigurationError
from models.ops import LLMCall
from services.llm.budget import RunBudget
from services.llm.gateway import CallContext, LLMGateway
from services.llm.limits import ProviderLimits
from services.llm.retry import RetryPolicy
from tests.fake_openai import (
    FakeOpenAI,
    RateLimited,
    Reply,
    ServerError,
    Slow,
    Truncated,
    fake_openai,
)

MODEL = "openai/gpt-4o-mini"  # litellm: supports a JSON schema in response_format, priced
PROMPT_ONLY_MODEL = "openai/gpt-3.5-turbo"  # litellm: no response schema support
CTX = CallContext(stage="research", member="analyst-1")
FAST_RETRY = RetryPolicy(max_attempts=3, base_s=0.01, max_backoff_s=0.05)


class Verdict(BaseModel):
    symbol: str = Field(pattern=r"^[A-Z]{1,5}$")
    score: float = Field(ge=0, le=1)


GOOD = '{"symbol": "AAPL", "score": 0.7}'
MESSAGES = [{"role": "user", "content": "Rate AAPL from 0 to 1."}]


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai(default=Reply(GOOD)) as fake:
        yield fake


def _gateway(engine: Engine, server: FakeOpenAI, **kwargs: Any) -> LLMGateway:
    store = SqlCallStore(make_session_factory(engine))
    options: dict[str, Any] = {"retry": FAST_RETRY} | kwargs
    return LLMGateway(store, api_base=server.base_url, api_key="test-key", **options)


def _rows(engine: Engine) -> list[LLMCall]:
    with make_session_factory(engine)() as session:
        return list(session.scalars(select(LLMCall).order_by(LLMCall.id)))


def _complete(gateway: LLMGateway, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"model": MODEL, "ctx": CTX} | kwargs
    return asyncio.run(gateway.complete(MESSAGES, Verdict, **options))


def test_a_valid_answer_is_parsed_priced_and_recorded(engine: Engine, server: FakeOpenAI) -> None:
    result = _complete(_gateway(engine, server))
    assert result.value == Verdict(symbol="AAPL", score=0.7)
    assert result.status is LLMCallStatus.OK
    assert result.cost_usd > 0
    (sent,) = server.requests
    assert sent.response_format is not None
    assert sent.response_format["json_schema"]["name"] == "Verdict"
    (row,) = _rows(engine)
    assert (row.stage, row.member, row.model, row.provider) == (
        "research",
        "analyst-1",
        MODEL,
        "openai",
    )
    assert row.parsed_output == {"symbol": "AAPL", "score": 0.7}
    assert row.raw_output == GOOD
    assert row.prompt_tokens > 0
    assert row.completion_tokens > 0
    assert row.cost_usd == result.cost_usd
    assert row.messages == MESSAGES
    assert row.schema_name == "Verdict"
    assert row.attempts == 1
    assert not row.cache_hit


def test_models_without_schema_support_get_the_schema_in_the_prompt(
    engine: Engine, server: FakeOpenAI
) -> None:
    server.enqueue(Reply(f"Here you go:\n```json\n{GOOD}\n```"))
    result = _complete(_gateway(engine, server), model=PROMPT_ONLY_MODEL)
    assert result.value == Verdict(symbol="AAPL", score=0.7)
    (sent,) = server.requests
    assert sent.response_format is None
    system = sent.body["messages"][0]
    assert system["role"] == "system"
    assert '"Verdict"' in system["content"]


@pytest.mark.parametrize(
    "bad",
    [
        Reply('{"symbol": "AAPL", "score": 0.7'),  # malformed
        Reply('{"symbol": "AAPL", "score": 7}'),  # wrong: out of range
        Reply('{"ticker": "AAPL"}'),  # wrong schema
        Truncated(GOOD),  # cut off by max_tokens
        Reply(""),
    ],
)
def test_a_bad_answer_is_repaired_once_with_the_validation_error(
    engine: Engine, server: FakeOpenAI, bad: Any
) -> None:
    server.enqueue(bad, Reply(GOOD))
    result = _complete(_gateway(engine, server))
    assert result.value == Verdict(symbol="AAPL", score=0.7)
    assert result.status is LLMCallStatus.REPAIRED
    _first, repair = server.requests
    follow_up = repair.body["messages"][-1]["content"]
    assert "could not be used" in follow_up
    assert repair.body["messages"][-2]["role"] == "assistant"
    (row,) = _rows(engine)
    assert row.status is LLMCallStatus.REPAIRED
    assert row.attempts == 2
    assert row.error is None


def test_an_answer_that_stays_invalid_is_recorded_and_never_returned(
    engine: Engine, server: FakeOpenAI
) -> None:
    server.enqueue(Reply('{"symbol": "aapl!", "score": 2}'), Reply("I think it's a buy."))
    result = _complete(_gateway(engine, server))
    assert result.value is None
    assert not result.ok
    assert result.status is LLMCallStatus.PARSE_ERROR
    assert result.error is not None
    assert "score" in result.error
    (row,) = _rows(engine)
    assert row.status is LLMCallStatus.PARSE_ERROR
    assert row.parsed_output is None
    assert row.raw_output == "I think it's a buy."
    assert row.cost_usd > 0  # both rounds were paid for, and say so


def test_rate_limits_are_retried_after_the_servers_retry_after(
    engine: Engine, server: FakeOpenAI
) -> None:
    server.enqueue(RateLimited(retry_after_s=0.3), Reply(GOOD))
    result = _complete(_gateway(engine, server))
    assert result.status is LLMCallStatus.OK
    assert len(server.requests) == 2
    assert server.arrival_gaps()[0] >= 0.3  # the server asked for 0.3 s; a shorter wait is a bug
    assert all(r.retry_count in (None, 0) for r in server.requests)  # no hidden SDK retries


def test_server_errors_and_timeouts_are_retried(engine: Engine, server: FakeOpenAI) -> None:
    server.enqueue(ServerError(503), Slow(5.0, Reply(GOOD)), Reply(GOOD))
    result = _complete(_gateway(engine, server), timeout_s=0.5)
    assert result.status is LLMCallStatus.OK
    assert len(server.requests) == 3


def test_a_provider_that_stays_down_is_a_recorded_failure_not_an_exception(
    engine: Engine, server: FakeOpenAI
) -> None:
    server.reset(default=ServerError(500))
    result = _complete(_gateway(engine, server))
    assert result.value is None
    assert result.status is LLMCallStatus.ERROR
    assert "gave up after 3 tries" in (result.error or "")
    assert len(server.requests) == 3
    (row,) = _rows(engine)
    assert row.status is LLMCallStatus.ERROR


def test_a_repeated_call_is_answered_from_the_cache_at_no_cost(
    engine: Engine, server: FakeOpenAI
) -> None:
    first = _complete(_gateway(engine, server))
    again = _complete(_gateway(engine, server))  # a new gateway: the cache is the table
    assert again.value == first.value
    assert again.cache_hit
    assert again.cost_usd == 0
    assert len(server.requests) == 1
    rows = _rows(engine)
    assert [r.cache_hit for r in rows] == [False, True]
    assert rows[1].cost_usd == 0
    assert rows[1].raw_output == rows[0].raw_output

    hotter = _complete(_gateway(engine, server), temperature=0.7)  # other parameters: a miss
    assert not hotter.cache_hit
    assert len(server.requests) == 2
    fresh = _complete(_gateway(engine, server, use_cache=False))
    assert not fresh.cache_hit
    assert len(server.requests) == 3


def test_failed_answers_are_not_cached(engine: Engine, server: FakeOpenAI) -> None:
    server.enqueue(Reply("nope"), Reply("still nope"))
    assert not _complete(_gateway(engine, server)).ok
    assert _complete(_gateway(engine, server)).ok  # asked again, not replayed
    assert len(server.requests) == 3


def test_the_budget_refuses_a_call_before_anything_is_sent(
    engine: Engine, server: FakeOpenAI
) -> None:
    budget = RunBudget(Decimal("0.000001"))
    with pytest.raises(BudgetExceededError, match="budget of"):
        _complete(_gateway(engine, server, budget=budget))
    assert server.requests == []
    assert budget.spent_usd == 0
    assert _rows(engine) == []


def test_a_run_stops_at_its_budget_having_spent_no_more_than_it(
    engine: Engine, server: FakeOpenAI
) -> None:
    gateway = _gateway(engine, server, use_cache=False)
    # Room for a few calls at max_tokens=50, not for many.
    budget = gateway.budget = RunBudget(Decimal("0.0001"))
    answered = 0
    stopped = False
    for _ in range(100):
        try:
            _complete(gateway, max_tokens=50)
        except BudgetExceededError:
            stopped = True
            break
        answered += 1
    assert stopped
    assert 1 <= answered < 100
    assert len(server.requests) == answered
    assert 0 < budget.spent_usd <= budget.limit_usd
    assert sum(r.cost_usd for r in _rows(engine)) == budget.spent_usd


def test_a_model_without_a_price_cannot_run_under_a_budget(
    engine: Engine, server: FakeOpenAI
) -> None:
    gateway = _gateway(engine, server, budget=RunBudget(1))
    with pytest.raises(ConfigurationError, match="no price for model"):
        _complete(gateway, model="openai/no-such-model-anywhere")
    assert server.requests == []


def test_concurrent_calls_respect_the_providers_limit(engine: Engine, server: FakeOpenAI) -> None:
    server.reset(default=Reply(GOOD), delay_s=0.3)
    gateway = _gateway(engine, server, limits=ProviderLimits(default=2), use_cache=False)

    async def many() -> list[Any]:
        return await asyncio.gather(
            *(gateway.complete(MESSAGES, Verdict, model=MODEL, ctx=CTX) for _ in range(6))
        )

    results = asyncio.run(many())
    assert all(r.ok for r in results)
    arrivals = sorted(r.received_at for r in server.requests)
    # Each answer takes >= 0.3 s, so with 2 slots no three requests can arrive within 0.25 s.
    assert all(
        later - earlier > 0.25 for earlier, later in zip(arrivals, arrivals[2:], strict=False)
    )


def test_every_call_is_one_row_with_its_context(engine: Engine, server: FakeOpenAI) -> None:
    gateway = _gateway(engine, server)
    asyncio.run(
        gateway.complete(
            MESSAGES, Verdict, model=MODEL, ctx=CallContext(stage="review", member="pm-2")
        )
    )
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(LLMCall)) == 1
        row = session.scalars(select(LLMCall)).one()
    assert (row.stage, row.member) == ("review", "pm-2")
    assert row.prompt_hash != row.cache_key
    assert json.loads(json.dumps(row.params)) == {"temperature": 0.0, "max_tokens": 2000}
