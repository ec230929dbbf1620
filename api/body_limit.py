"""Request bodies are bounded before anything reads, parses or authenticates them.

Without this, FastAPI reads a body in full and parses it before a route's dependencies
run: a 100 MB body was read (and its JSON parsed) before its 401, and a 4.7 MB object of
400,000 keys held the event loop, `/health` included, for seconds. Here, in order:

1. A `Content-Length` over `max_bytes` is a 413 at once; not a byte of the body is read.
2. Otherwise the body is read here, counted as it arrives; the moment a chunked body (no
   `Content-Length`) passes `max_bytes` it is a 413. The app has not started: nothing can
   have been written.
3. A body FastAPI may parse as JSON (`application/json`, `*+json`, or no type, which a
   route with `strict_content_type=False` parses) is measured on its bytes
   (api/json_shape.py); too many keys and items, or too deep, is a 413 as well
   (docs/decisions/0012 says why not 422).
4. The app gets the body as one message, as if from the server; later `receive` calls
   (a streaming response waiting for the disconnect) go to the server.

Refusals answer `Connection: close`: the rest of the body is not wanted, and the server
then closes instead of draining it. Pure ASGI like api/middleware.py, and it must sit
inside `RequestContextMiddleware` (for the request id) and outside the router and its
dependencies. Only `http` scopes: WebSocket messages are bounded by the server.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import FieldProblem, problem
from api.json_shape import json_oversize

logger = logging.getLogger(__name__)


class BodyLimitMiddleware:
    """Refuse a body over `max_bytes`, or JSON with too much structure, with a 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            detail = f"the body is {declared} bytes; at most {self.max_bytes} are accepted"
            await _refuse(scope, receive, send, detail)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: nobody to answer
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                detail = f"the body passed {self.max_bytes} bytes, the most accepted"
                await _refuse(scope, receive, send, detail)
                return
            more = message.get("more_body", False)
        if _parsed_as_json(scope) and (why := json_oversize(bytes(body))):
            await _refuse(scope, receive, send, why)
            return
        await self.app(scope, _replay(bytes(body), receive), send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    """The declared length; None without one (chunked) or when it is not a number, in
    which case the body is counted as it arrives like a chunked one."""
    value = (_header(scope, b"content-length") or b"").strip()
    if not value.isdigit():
        return None
    digits = value.lstrip(b"0") or b"0"
    return int(digits) if len(digits) <= 18 else 10**18  # int() refuses 4,300+ digits


def _parsed_as_json(scope: Scope) -> bool:
    """Whether FastAPI may parse this body as JSON: a JSON type, or none (parsed as JSON
    where `strict_content_type` is off)."""
    value = _header(scope, b"content-type")
    if not value:
        return True
    media = value.split(b";", 1)[0].strip().lower()
    kind, _, subtype = media.partition(b"/")
    return kind == b"application" and (subtype == b"json" or subtype.endswith(b"+json"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the buffered body once, then defers to the server's."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
    logger.info("http.body_refused", extra={"path": scope["path"], "reason": detail})
    request = Request(scope)
    errors = [FieldProblem(field="body", message=detail)]
    response = problem(request, 413, detail, errors=errors, headers={"Connection": "close"})
    await response(scope, receive, send)
