"""litellm's real client against the fake OpenAI server: what the LLM gateway can rely on.

These pin litellm 1.106.2's behaviour (exception classes, where Retry-After
lives, the openai SDK's own retries) as much as they test the fake.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm: no cost-map fetch

import litellm
from litellm.exceptions import (  # litellm's __init__ re-exports them implicitly: mypy refuses
    BadGatewayError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)

from tests.fake_openai import (
    FakeOpenAI,
    RateLimited,
    Reply,
    Responder,
    ServerError,
    Slow,
    Truncated,
    fake_openai,
)

MODEL = "openai/gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Pitch one stock as JSON."}]
PITCH_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "pitch",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"symbol": {"type": "string"}},
            "required": ["symbol"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def served() -> Iterator[FakeOpenAI]:
    """One server for the module: uvicorn's start and stop cost ~0.2 s each."""
    with fake_openai() as s:
        yield s


@pytest.fixture
def server(served: FakeOpenAI) -> FakeOpenAI:
    served.reset()
    return served


def call_args(server: FakeOpenAI, **overrides: Any) -> dict[str, Any]:
    """No retries: each test sees exactly the requests it scripted."""
    return {
        "model": MODEL,
        "messages": MESSAGES,
        "api_base": server.base_url,
        "api_key": "sk-fake",
        "num_retries": 0,
    } | overrides


def complete(server: FakeOpenAI, **overrides: Any) -> litellm.ModelResponse:
    response = litellm.completion(**call_args(server, **overrides))
    assert isinstance(response, litellm.ModelResponse)
    return response


def acomplete(server: FakeOpenAI, **overrides: Any) -> litellm.ModelResponse:
    """The gateway's path: `acompletion` on its own event loop (aiohttp transport)."""
    response = asyncio.run(litellm.acompletion(**call_args(server, **overrides)))
    assert isinstance(response, litellm.ModelResponse)
    return response


def content_of(response: litellm.ModelResponse) -> str | None:
    choice = response.choices[0]
    assert isinstance(choice, litellm.Choices)
    content: str | None = choice.message.content
    return content


def finish_reason_of(response: litellm.ModelResponse) -> str | None:
    reason: str | None = response.choices[0].finish_reason
    return reason


def test_a_valid_reply_parses_and_is_priced_from_the_cost_map(server: FakeOpenAI) -> None:
    server.enqueue(Reply('{"symbol": "AAPL"}', prompt_tokens=1000, completion_tokens=100))
    response = complete(server)
    assert json.loads(content_of(response) or "") == {"symbol": "AAPL"}
    assert finish_reason_of(response) == "stop"
    # gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output
    assert litellm.completion_cost(response) == pytest.approx(1000 * 0.15e-6 + 100 * 0.6e-6)


def test_malformed_json_comes_back_verbatim_for_the_caller_to_reject(server: FakeOpenAI) -> None:
    server.enqueue(Reply('{"symbol": "AAPL"'))
    assert content_of(acomplete(server)) == '{"symbol": "AAPL"'


def test_a_429_raises_rate_limit_error_with_retry_after_in_litellm_response_headers(
    server: FakeOpenAI,
) -> None:
    server.enqueue(RateLimited(retry_after_s=2))
    with pytest.raises(RateLimitError) as caught:
        acomplete(server)
    headers = getattr(caught.value, "litellm_response_headers", None)  # set by setattr
    assert headers is not None
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "2000"
    assert "retry-after" not in caught.value.response.headers  # empty for the openai provider
    assert caught.value.headers is None
    assert len(server.requests) == 1  # num_retries=0 also stops the openai SDK's own retries


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (500, InternalServerError),
        (502, BadGatewayError),
        (503, ServiceUnavailableError),
    ],
)
def test_a_server_error_raises_its_own_litellm_exception(
    server: FakeOpenAI, status: Any, exception: type[Exception]
) -> None:
    server.enqueue(ServerError(status))
    with pytest.raises(exception) as caught:
        acomplete(server)
    assert caught.value.status_code == status  # type: ignore[attr-defined]


def test_an_answer_slower_than_the_timeout_raises_litellm_timeout(server: FakeOpenAI) -> None:
    server.enqueue(Slow(5, Reply("too late")))
    started = time.monotonic()
    with pytest.raises(Timeout):
        acomplete(server, timeout=0.5)
    assert time.monotonic() - started < 2


def test_a_truncated_reply_is_half_the_content_with_finish_reason_length(
    server: FakeOpenAI,
) -> None:
    server.enqueue(Truncated('{"symbol": "AAPL"}'))
    response = acomplete(server)
    assert content_of(response) == '{"symbol"'
    assert finish_reason_of(response) == "length"


def test_a_json_schema_response_format_reaches_the_server(server: FakeOpenAI) -> None:
    acomplete(server, response_format=PITCH_SCHEMA)
    (request,) = server.requests
    assert request.response_format == PITCH_SCHEMA
    assert request.model == "gpt-4o-mini"  # litellm strips the provider prefix
    assert request.headers["authorization"] == "Bearer sk-fake"


def test_a_responder_answers_from_the_request(server: FakeOpenAI) -> None:
    server.enqueue(Responder(lambda body: json.dumps(body["response_format"])))
    response = acomplete(server, response_format=PITCH_SCHEMA)
    assert json.loads(content_of(response) or "") == PITCH_SCHEMA


def test_an_empty_queue_falls_back_to_the_default() -> None:
    with fake_openai(default=Reply("fallback")) as server:
        server.enqueue(Reply("scripted"))
        assert content_of(acomplete(server)) == "scripted"
        assert content_of(acomplete(server)) == "fallback"
        assert server.pending == 0


def test_delay_s_holds_every_answer(server: FakeOpenAI) -> None:
    server.reset(delay_s=0.3)
    started = time.monotonic()
    acomplete(server)
    assert time.monotonic() - started >= 0.3


def test_without_num_retries_the_openai_sdk_retries_twice_honouring_retry_after(
    server: FakeOpenAI,
) -> None:
    """A gateway that owns its retries must pass num_retries=0, or each call is up to 3 requests."""
    server.enqueue(RateLimited(0.2), RateLimited(0.2))
    response = acomplete(server, num_retries=None)
    assert content_of(response) == "ok"
    assert [r.retry_count for r in server.requests] == [0, 1, 2]
    assert all(gap >= 0.2 for gap in server.arrival_gaps())


def test_a_streamed_answer_arrives_in_pieces_with_its_usage(server: FakeOpenAI) -> None:
    server.enqueue(Reply('{"answer": "a streamed reply"}'))

    async def stream() -> tuple[list[str], Any]:
        chunks = []
        answer = await litellm.acompletion(
            **call_args(server), stream=True, stream_options={"include_usage": True}
        )
        async for chunk in answer:
            chunks.append(chunk)
        pieces = [
            c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
        ]
        return pieces, litellm.stream_chunk_builder(chunks)

    pieces, whole = asyncio.run(stream())
    assert len(pieces) > 3
    assert "".join(pieces) == '{"answer": "a streamed reply"}'
    assert whole.usage.completion_tokens > 0


def test_structured_output_support_is_per_model_in_the_cost_map() -> None:
    assert litellm.supports_response_schema(model="openai/gpt-4o-mini")
    assert not litellm.supports_response_schema(model="openai/gpt-3.5-turbo-0613")
    assert not litellm.supports_response_schema(model="openai/gpt-4o-2024-05-13")
