"""Models as configuration: the models file, the facts the gateway takes from it (window,
output limit, prices, timeout, tries, concurrency, server and key), the context-window
refusal and the cache-only gateway of a replay.

Calls go through litellm's real client to the loopback fake OpenAI server and are
recorded in the real `llm_calls` table, on SQLite and on Postgres.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import litellm
import pytest
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select

from db.engine import make_engine, make_session_factory
from db.queries.llm_calls import SqlCallStore
from models.enums import LLMCallStatus
from models.errors import ConfigurationError
from models.llm_config import ModelsFile, ModelSpec, RosterSpec
from models.ops import LLMCall
from services.llm.budget import RunBudget
from services.llm.catalog import NO_KEY, ModelCatalog, load_models_file
from services.llm.gateway import NOT_IN_CACHE, CallContext, LLMGateway
from services.llm.retry import RetryPolicy
from tasks.council.roster import default_roster, seat_models
from tests.fake_openai import FakeOpenAI, Reply, ServerError, Slow, fake_openai

CTX = CallContext(stage="research", member="analyst-1")


class Verdict(BaseModel):
    symbol: str = Field(pattern=r"^[A-Z]{1,5}$")
    score: float = Field(ge=0, le=1)


GOOD = '{"symbol": "AAPL", "score": 0.7}'
SHORT = [{"role": "user", "content": "Rate AAPL from 0 to 1."}]


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai(default=Reply(GOOD, prompt_tokens=1000, completion_tokens=100)) as fake:
        yield fake


def _spec(server: FakeOpenAI, **fields: Any) -> ModelSpec:
    base: dict[str, Any] = {
        "name": "local",
        "model": "openai/local-llama-7b",  # unknown to litellm: everything comes from the file
        "api_base": server.base_url,
        "input_window": 4096,
        "output_limit": 512,
        "input_cost_per_token": "0.000001",
        "output_cost_per_token": "0.000002",
    }
    return ModelSpec.model_validate(base | fields)


def _gateway(engine: Engine, *specs: ModelSpec, **kwargs: Any) -> LLMGateway:
    store = SqlCallStore(make_session_factory(engine))
    fast = RetryPolicy(max_attempts=4, base_s=0.01, max_backoff_s=0.02)
    return LLMGateway(store, catalog=ModelCatalog(specs), retry=fast, **kwargs)


def _rows(engine: Engine) -> list[LLMCall]:
    with make_session_factory(engine)() as session:
        return list(session.scalars(select(LLMCall).order_by(LLMCall.id)))


def _ask(gateway: LLMGateway, messages: list[dict[str, Any]] = SHORT, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"model": "local", "ctx": CTX} | kwargs
    return asyncio.run(gateway.complete(messages, Verdict, **options))


# --- the file ------------------------------------------------------------------------


def test_a_yaml_models_file_loads_with_its_roster(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - name: small\n"
        "    model: openai/llama3.1-8b\n"
        "    api_base: http://127.0.0.1:11434/v1\n"
        "    input_window: 8192\n"
        "  - model: openai/gpt-4o-mini\n"
        "roster:\n"
        "  analyst: small\n"
        "  reviewer: openai/gpt-4o-mini\n"
        "  chairman: openai/gpt-4o-mini\n"
        "  seats: {pm-contrarian: small}\n"
    )
    loaded = load_models_file(path)
    assert [m.name for m in loaded.models] == ["small", "openai/gpt-4o-mini"]  # name: model
    roster = seat_models(default_roster(["openai/gpt-4o"]), loaded.roster)
    assert {m.model for m in roster.analysts} == {"small"}
    assert roster.chairman.model == "openai/gpt-4o-mini"
    pms = {m.name: m for m in roster.pms}
    assert pms["pm-contrarian"].model == "small"
    assert pms["pm-momentum"].model == "openai/gpt-4o"  # no pm model given: the default
    assert {m.review_model for m in roster.pms} == {"openai/gpt-4o-mini"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("models: [{model: a/b, input_cost_per_token: 1}]", "give both input and output prices"),
        ("models: [{model: a/b}, {model: a/b}]", "model names must be distinct"),
        ("roster: {chairman: nobody}", "the roster names models the file does not define"),
        ("models: [{model: a/b, input_window: 1000, output_limit: 1000}]", "leaves no room"),
        ("models: [{model: a/b, temperature: 2}]", "models.0.temperature: Extra inputs"),
        ("models: [oops", "is not valid"),
    ],
)
def test_a_bad_models_file_is_refused_in_one_line(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_models_file(path)
    assert error in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_models_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"models file .*nowhere\.json: No such file"):
        load_models_file(tmp_path / "nowhere.json")


def test_the_files_prices_are_registered_with_litellm() -> None:
    spec = ModelSpec(
        model="openai/priced-here",
        input_cost_per_token=Decimal("0.000003"),
        output_cost_per_token=Decimal("0.000004"),
        input_window=9000,
    )
    ModelCatalog([spec])
    prompt, answer = litellm.cost_per_token(
        model="openai/priced-here", prompt_tokens=1000, completion_tokens=100
    )
    assert (prompt, answer) == pytest.approx((0.003, 0.0004))
    assert litellm.get_model_info("openai/priced-here")["max_input_tokens"] == 9000


def test_facts_come_from_the_file_then_litellm_then_the_default() -> None:
    catalog = ModelCatalog(
        [ModelSpec(model="openai/local-x", input_window=2048)], default_window=3000
    )
    assert catalog.facts("openai/local-x").window == 2048
    assert catalog.facts("openai/gpt-4o-mini").window == 128_000  # litellm's map
    assert catalog.facts("openai/nobody-knows-me").window == 3000
    assert catalog.facts("offline/analyst").window is None  # no limit, no price
    mini = catalog.facts("openai/gpt-4o-mini")
    assert mini.answer_tokens(100_000) == mini.spec.output_limit == 16_384


def test_a_key_variable_that_is_not_set_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AITRADER_TEST_KEY", raising=False)
    catalog = ModelCatalog([ModelSpec(model="openai/keyed", api_key_env="AITRADER_TEST_KEY")])
    with pytest.raises(ConfigurationError, match="AITRADER_TEST_KEY is not set"):
        catalog.facts("openai/keyed")
    monkeypatch.setenv("AITRADER_TEST_KEY", "sk-from-env")
    assert (
        ModelCatalog([ModelSpec(model="openai/keyed", api_key_env="AITRADER_TEST_KEY")])
        .facts("openai/keyed")
        .api_key
        == "sk-from-env"
    )


# --- the gateway with a models file -----------------------------------------------------


def test_a_local_model_is_called_at_its_server_without_a_key_and_priced_from_the_file(
    engine: Engine, server: FakeOpenAI
) -> None:
    gateway = _gateway(engine, _spec(server), budget=RunBudget(Decimal("0.01")))
    result = _ask(gateway)
    assert result.ok
    assert result.cost_usd == Decimal("0.001") + Decimal("0.0002")  # 1,000 in, 100 out
    (request,) = server.requests
    assert request.body["model"] == "local-llama-7b"
    assert request.body["max_tokens"] == 512  # 2,000 asked, capped by the output limit
    assert request.headers["authorization"] == f"Bearer {NO_KEY}"
    (row,) = _rows(engine)
    assert row.model == "openai/local-llama-7b"
    assert row.cost_usd == Decimal("0.0012")


def test_a_prompt_that_does_not_fit_the_window_is_refused_with_the_numbers_and_never_sent(
    engine: Engine, server: FakeOpenAI
) -> None:
    gateway = _gateway(engine, _spec(server))
    huge = [{"role": "user", "content": "AAPL " * 5000}]
    result = _ask(gateway, huge)
    assert not result.ok
    assert server.requests == []
    assert result.error.startswith("prompt of ")
    assert (
        "does not fit local: window 4,096, 512 kept for the answer and 10% margin" in result.error
    )
    (row,) = _rows(engine)
    assert row.status is LLMCallStatus.ERROR
    assert row.error == result.error
    assert row.attempts == 0


def test_the_files_tries_and_timeout_replace_the_defaults(
    engine: Engine, server: FakeOpenAI
) -> None:
    server.enqueue(ServerError(500), ServerError(500))
    gateway = _gateway(engine, _spec(server, tries=2))
    assert not _ask(gateway).ok
    assert len(server.requests) == 2  # not the policy's 4

    slow = _spec(server, name="slow", timeout_s=0.3, tries=1)
    server.enqueue(Slow(2.0, Reply(GOOD)))
    started = time.monotonic()
    result = _ask(_gateway(engine, slow), model="slow")
    assert not result.ok
    assert "Timeout" in (result.error or "")
    assert time.monotonic() - started < 1.5


def test_a_models_concurrency_caps_its_calls_in_flight(engine: Engine) -> None:
    with fake_openai(default=Slow(0.3, Reply(GOOD))) as server:
        gateway = _gateway(engine, _spec(server, concurrency=1))

        async def three() -> list[Any]:
            return list(
                await asyncio.gather(
                    *(gateway.complete(SHORT, Verdict, model="local", ctx=CTX) for _ in range(3))
                )
            )

        started = time.monotonic()
        results = asyncio.run(three())
    assert all(r.ok for r in results)
    arrivals = sorted(r.received_at for r in server.requests)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.25  # one at a time
    assert time.monotonic() - started >= 0.9


def test_a_cache_only_gateway_answers_from_the_cache_and_sends_nothing(
    engine: Engine, server: FakeOpenAI
) -> None:
    assert _ask(_gateway(engine, _spec(server))).ok
    sent = len(server.requests)
    replay = _gateway(engine, _spec(server), cache_only=True)
    hit = _ask(replay)
    assert hit.ok
    assert hit.cache_hit
    miss = _ask(replay, [{"role": "user", "content": "Rate MSFT from 0 to 1."}])
    assert not miss.ok
    assert miss.error == NOT_IN_CACHE
    assert len(server.requests) == sent  # nothing more was sent
    rows = _rows(engine)
    assert [(r.cache_hit, r.status, r.cost_usd) for r in rows[1:]] == [
        (True, LLMCallStatus.OK, Decimal(0)),
        (False, LLMCallStatus.ERROR, Decimal(0)),
    ]


def test_the_roster_file_may_leave_every_role_to_the_default() -> None:
    roster = default_roster(["openai/gpt-4o"])
    assert seat_models(roster, ModelsFile().roster) == roster
    assert RosterSpec().empty
    roles: dict[str, Any] = {
        "analyst": None,
        "pm": None,
        "reviewer": None,
        "chairman": None,
        "seats": {},
    }
    assert json.loads(ModelsFile().model_dump_json()) == {"models": [], "roster": roles}
