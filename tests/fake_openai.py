"""A loopback fake of OpenAI's Chat Completions API, for testing the LLM gateway.

litellm's real client (`model="openai/gpt-4o-mini"`, `api_base=server.base_url`,
any `api_key`) talks to it over HTTP, so retries, timeouts, header parsing and
cost accounting under test are litellm's own code, not a mock of it.

The test scripts the answers: each `POST /v1/chat/completions` pops the next
queued behaviour, or uses `default` when the queue is empty:

* `Reply(content)` -> a `chat.completion` with `usage`, so `litellm.completion_cost`
  prices it from the local cost map; the content is whatever the test wants
  (valid, malformed or wrong-schema JSON);
* `Truncated(content)` -> the first half of `content`, `finish_reason="length"`;
* `RateLimited(retry_after_s)` -> 429, OpenAI error body, `Retry-After` header;
* `ServerError(status)` -> 500/502/503 with an OpenAI error body;
* `Slow(seconds, then)` -> waits, then answers `then` (to trip client timeouts);
* `Responder(fn)` -> `fn(request_json)` is the content (e.g. echo the schema).

Every request is recorded (body, headers, arrival time) before it is answered.

What litellm 1.106.2 raises for the `openai/` provider (pinned by tests/test_fake_openai.py):

    429 -> litellm.RateLimitError          (subclass of openai.RateLimitError)
    500 -> litellm.InternalServerError     (subclass of openai.InternalServerError)
    502 -> litellm.BadGatewayError         (subclass of openai.APIStatusError only)
    503 -> litellm.ServiceUnavailableError (subclass of openai.APIStatusError only)
    client timeout -> litellm.Timeout      (subclass of openai.APITimeoutError)

Note for the gateway: Retry-After of a 429 is on
`exc.litellm_response_headers["retry-after"]` (an `httpx.Headers`, so
case-insensitive; `retry-after-ms` sits beside it). litellm's exception
mapper sets that attribute with `setattr`, so it is not declared on the
class: read it as `getattr(exc, "litellm_response_headers", None)`. NOT on
`exc.response.headers` (empty: litellm's OpenAIError builds a bare
`httpx.Response`) and NOT on `exc.headers` (None: litellm fills it only from
its own proxy's limiters, never from a vendor response).

The openai SDK retries by itself (twice, honouring Retry-After) unless the
call passes `num_retries=0` or `max_retries=0`; `x-stainless-retry-count`
in the recorded headers tells its attempts apart.

Streaming (`stream: true`) sends the same answer as OpenAI's chunks, a few characters
each, with a usage chunk when asked (`stream_options.include_usage`).

Not here: tool calls, the Responses API, embeddings.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.live_server import serve_in_thread

_POLL_S = 0.02
STREAM_PIECE = 7  # characters per streamed delta: small, so a stream has many


# --- behaviours ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """A completed answer. Token counts default to a chars/4 estimate of the texts."""

    content: str
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Truncated:
    """The model ran out of `max_tokens`: half of `content` comes back, reason "length"."""

    content: str


@dataclass(frozen=True, slots=True)
class RateLimited:
    """429. `retry_after_s=None` sends no Retry-After, as a provider may."""

    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class ServerError:
    status: Literal[500, 502, 503] = 500


@dataclass(frozen=True, slots=True)
class Slow:
    """Answer `then` after `seconds`; stops waiting if the client hangs up first."""

    seconds: float
    then: Behaviour


@dataclass(frozen=True, slots=True)
class Responder:
    """Compute the content from the parsed request body (messages, response_format, ...).

    `fn` runs on the server's thread; if it raises, the client gets a 500.
    """

    fn: Callable[[dict[str, Any]], str]


Behaviour = Reply | Truncated | RateLimited | ServerError | Slow | Responder


# --- records ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as it arrived. `received_at` is `time.monotonic()`, comparable to the test's."""

    body: dict[str, Any]
    headers: dict[str, str]  # all of them, names lower-cased
    received_at: float

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def response_format(self) -> dict[str, Any] | None:
        return self.body.get("response_format")

    @property
    def retry_count(self) -> int | None:
        """The openai SDK's own retry counter (`x-stainless-retry-count`), if it sent one."""
        value = self.headers.get("x-stainless-retry-count")
        return int(value) if value is not None else None


# --- the server ---------------------------------------------------------------


@dataclass
class FakeOpenAI:
    """The app and its script. Mutated from the test thread, read from uvicorn's: all under a lock.

    `delay_s` is added before every answer, errors included (benchmarks' model latency).
    """

    default: Behaviour = field(default_factory=lambda: Reply("ok"))
    delay_s: float = 0.0
    base_url: str = ""  # ends in /v1; set by `fake_openai()`
    _queue: deque[Behaviour] = field(default_factory=deque, init=False, repr=False)
    _records: list[RecordedRequest] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _closing: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _ids: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)

    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def reset(self, *, default: Behaviour | None = None, delay_s: float = 0.0) -> None:
        """Forget the script and the records, so one server can serve a whole module's tests."""
        with self._lock:
            self._queue.clear()
            self._records.clear()
            self.default = Reply("ok") if default is None else default
            self.delay_s = delay_s

    @property
    def pending(self) -> int:
        """Behaviours queued and not yet used: 0 once the script has played out."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot, oldest first."""
        with self._lock:
            return list(self._records)

    def arrival_gaps(self) -> list[float]:
        """Seconds between consecutive requests: how long a client waited before retrying."""
        times = [r.received_at for r in self.requests]
        return [b - a for a, b in itertools.pairwise(times)]

    @cached_property
    def app(self) -> FastAPI:
        """The ASGI app, for `serve_in_thread` (or any server) to run."""
        app = FastAPI()
        app.add_api_route("/v1/chat/completions", self._chat_completions, methods=["POST"])
        return app

    def _record_and_pop(self, body: dict[str, Any], headers: dict[str, str]) -> Behaviour:
        with self._lock:
            self._records.append(RecordedRequest(body, headers, time.monotonic()))
            return self._queue.popleft() if self._queue else self.default

    async def _chat_completions(self, request: Request) -> Response:
        body = await request.json()
        behaviour = self._record_and_pop(body, {k.lower(): v for k, v in request.headers.items()})
        await self._wait(request, self.delay_s)
        while isinstance(behaviour, Slow):
            await self._wait(request, behaviour.seconds)
            behaviour = behaviour.then
        answer = self._answer(behaviour, body)
        if not body.get("stream") or answer.status_code != 200:
            return answer  # errors come before a stream starts, as OpenAI's do
        return StreamingResponse(
            _chunks(json.loads(bytes(answer.body)), body), media_type="text/event-stream"
        )

    async def _wait(self, request: Request, seconds: float) -> None:
        """Sleep, but give up when the client has gone or the server is stopping.

        uvicorn's shutdown waits for in-flight requests; a timed-out client's
        `Slow(30, ...)` must not hold the test's teardown for 30 s.
        """
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._closing.is_set() or await request.is_disconnected():
                return
            await asyncio.sleep(min(left, _POLL_S))

    def _answer(self, behaviour: Behaviour, body: dict[str, Any]) -> JSONResponse:
        match behaviour:
            case Reply():
                return JSONResponse(self._completion(behaviour, body))
            case Truncated(content):
                half = Reply(content[: len(content) // 2], finish_reason="length")
                return JSONResponse(self._completion(half, body))
            case Responder(fn):
                return JSONResponse(self._completion(Reply(fn(body)), body))
            case RateLimited(retry_after_s):
                return _rate_limited(body, retry_after_s)
            case ServerError(status):
                return _error(status, f"fake_openai: scripted {status}", "server_error")
            case Slow():
                raise AssertionError("Slow is unwrapped before answering")

    def _completion(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = _estimate_tokens(json.dumps(body.get("messages", [])))
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = _estimate_tokens(reply.content)
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _chunks(completion: dict[str, Any], body: dict[str, Any]) -> Iterator[str]:
    """A completion as OpenAI streams it: content deltas of a few characters, the finish
    reason, a usage chunk if `stream_options.include_usage`, then `[DONE]`."""
    choice = completion["choices"][0]
    content: str = choice["message"]["content"] or ""
    head = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n"

    yield event(
        [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    )
    for start in range(0, len(content), STREAM_PIECE):
        piece = content[start : start + STREAM_PIECE]
        yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}])
    if (body.get("stream_options") or {}).get("include_usage"):
        yield event([], usage=completion["usage"])
    yield "data: [DONE]\n\n"


def _estimate_tokens(text: str) -> int:
    """OpenAI's rule of thumb, ~4 characters a token; at least 1 so costs are never zero."""
    return max(1, len(text) // 4)


def _error(
    status: int,
    message: str,
    kind: str,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _rate_limited(body: dict[str, Any], retry_after_s: float | None) -> JSONResponse:
    """OpenAI sends `retry-after` (seconds) and `retry-after-ms`; the openai SDK reads -ms first."""
    headers: dict[str, str] = {}
    if retry_after_s is not None:
        headers = {
            "retry-after": f"{retry_after_s:g}",
            "retry-after-ms": str(round(retry_after_s * 1000)),
        }
    message = f"Rate limit reached for {body.get('model', 'gpt-4o-mini')} (fake_openai)."
    return _error(429, message, "requests", headers, code="rate_limit_exceeded")


@contextmanager
def fake_openai(*, default: Behaviour | None = None, delay_s: float = 0.0) -> Iterator[FakeOpenAI]:
    """Serve a `FakeOpenAI` on loopback for the block; `server.base_url` ends in /v1."""
    server = FakeOpenAI(delay_s=delay_s) if default is None else FakeOpenAI(default, delay_s)
    with serve_in_thread(server.app) as url:
        server.base_url = f"{url}/v1"
        try:
            yield server
        finally:
            server._closing.set()
