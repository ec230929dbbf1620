"""Request ids, timing headers, latency metrics and one JSON access-log line per request."""

from __future__ import annotations

import json
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import Metrics

logger = logging.getLogger("api.access")

_STREAMING = ("/api/stream/", "/ws")


class RequestContextMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware), so streaming responses pass through untouched."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        given = headers.get(b"x-request-id", b"").decode(errors="replace")[:64]
        request_id = "".join(c for c in given if c.isascii() and c.isprintable()) or (
            uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = time.perf_counter() - started
                extra = [
                    (b"x-request-id", request_id.encode()),
                    (b"x-process-time", f"{elapsed:.6f}".encode()),
                ]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            if _has_nul(scope):
                await _refuse_nul(scope, send_with_headers, request_id)
                return
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            path: str = scope["path"]
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if not path.startswith(_STREAMING):  # a stream's duration is not a latency
                self.metrics.request_seconds.labels(scope["method"], route, str(status)).observe(
                    elapsed
                )
            logger.info(
                "http.request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                },
            )


def _has_nul(scope: Scope) -> bool:
    """A NUL in the path or query: no database can take it as text, so no handler may see it."""
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


async def _refuse_nul(scope: Scope, send: Send, request_id: str) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Invalid request",
            "status": 422,
            "detail": "the URL contains a NUL character",
            "request_id": request_id,
            "errors": [
                {
                    "field": "query" if "\x00" not in scope["path"] else "path",
                    "message": "must not contain NUL characters",
                }
            ],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
