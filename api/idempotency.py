"""`Idempotency-Key` on every mutating request: a retry is answered, not acted on again.

The semantics are the IETF httpapi draft's (draft-ietf-httpapi-idempotency-key-header),
as Stripe's and Alpaca's clients use them:

* A POST, PUT, PATCH or DELETE may carry `Idempotency-Key: <1..255 visible ASCII>`
  (a quoted structured-field string is accepted too). Without one, nothing changes.
* The first request with a key claims it (committed before the request acts),
  runs, and its answer (status, headers, body) is stored with the key.
* A retry with the same key and the same request (method, path, query and
  body) gets the stored answer back, marked `Idempotency-Replayed: true`,
  without acting again.
* The same key with another request is a 422; while the first request is
  still running, a retry is a 409 with `Retry-After`.
* An answer of 503 or 429 means nothing was done (the house rule), so its key
  is released and the retry acts. 401 and 403 are refused before anything is
  done, likewise.
* Keys are the sender's: scoped by a digest of the request's credentials. They
  are kept for `KEEP_FOR` (24 h), then forgotten.

A request whose process dies between acting and storing its answer leaves its
key `in_progress`: its retries get 409 saying the outcome is unknown, rather
than a second effect. The effects underneath are exactly-once on their own
(orders by `client_order_id`), so a new key cannot double an order either;
it can double a chat message or a job.

Pure ASGI, inside the body limit and the request-context middleware, so the
body it hashes is bounded and problems carry the request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.engine import transaction
from db.queries.idempotency import DONE, claim_key, complete_key, prune_keys, release_key
from db.queries.jobs import job_owner
from models.ops import IdempotencyRecord

logger = logging.getLogger(__name__)

HEADER = b"idempotency-key"
KEEP_FOR = timedelta(hours=24)
PRUNE_EVERY_S = 600.0
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOTHING_DONE = frozenset({401, 403, 429, 503})
_REPLAYED = (b"idempotency-replayed", b"true")
Sessions = sessionmaker[Session]
_HOP_BY_HOP = {b"content-length", b"x-request-id", b"x-process-time", b"transfer-encoding"}


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._pruned_at = 0.0
        self._pruning: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers", [])).get(HEADER)
        if raw is None:
            await self.app(scope, receive, send)
            return
        key = _parse_key(raw)
        if key is None:
            await _problem(
                scope, send, 422, "Invalid request", "Idempotency-Key: 1 to 255 visible ASCII"
            )
            return
        body, more = await _read_body(receive)
        if more is None:
            return  # the client left before sending its body: nothing to do
        runtime = scope["app"].state.runtime
        sessions = runtime.sessions
        who = _scope_of(scope)
        fingerprint = _fingerprint(scope, body)
        try:
            claim = await asyncio.to_thread(
                transaction,
                sessions,
                lambda s: claim_key(
                    s,
                    scope=who,
                    key=key,
                    fingerprint=fingerprint,
                    method=scope["method"],
                    path=scope["path"],
                    owner=job_owner(),
                    keep_for=KEEP_FOR,
                ),
            )
        except SQLAlchemyError as exc:  # nothing was done: the client retries with its key
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            logger.warning("idempotency.claim_failed", extra={"reason": reason})
            await _problem(
                scope,
                send,
                503,
                "Service unavailable",
                f"the database is unavailable: {reason}",
                retry_after="1",
            )
            return
        self._maybe_prune(sessions)
        if claim.record is not None:
            await _answer_holder(scope, send, claim.record, claim.same_request)
            return
        await self._run(scope, _replay(body, receive), send, sessions, who, key)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, sessions: Sessions, who: str, key: str
    ) -> None:
        status = 500
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        client_gone = False

        async def capture(message: Message) -> None:
            nonlocal status, headers, client_gone
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", [])
                    if k.lower() not in _HOP_BY_HOP
                ]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            if client_gone:
                return
            try:
                await send(message)
            except OSError:  # the client left: the request's outcome is still kept
                client_gone = True

        try:
            await self.app(scope, receive, capture)
        except Exception as exc:  # recorded for the retries, then the error handlers answer
            body = _problem_body(500, "Internal error", f"failed with {type(exc).__name__}")
            with contextlib.suppress(SQLAlchemyError):
                await self._keep(sessions, who, key, 500, [], body)
            raise
        try:
            if status in NOTHING_DONE:
                await asyncio.to_thread(transaction, sessions, lambda s: release_key(s, who, key))
            else:
                await self._keep(sessions, who, key, status, headers, b"".join(chunks))
        except SQLAlchemyError:  # answered already; its retries will be told to wait
            logger.exception(
                "idempotency.not_kept", extra={"status": status, "path": scope["path"]}
            )

    async def _keep(
        self,
        sessions: Sessions,
        who: str,
        key: str,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        await asyncio.to_thread(
            transaction, sessions, lambda s: complete_key(s, who, key, status, headers, body)
        )

    def _maybe_prune(self, sessions: Sessions) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()

        async def prune() -> None:
            try:
                await asyncio.to_thread(transaction, sessions, prune_keys)
            except Exception:  # housekeeping: a failed prune is retried next time
                logger.exception("idempotency.prune_failed")

        task = asyncio.get_running_loop().create_task(prune())
        self._pruning.add(task)
        task.add_done_callback(self._pruning.discard)


async def _answer_holder(
    scope: Scope, send: Send, record: IdempotencyRecord, same_request: bool
) -> None:
    """Answer a request whose key is held: the stored answer, or why not."""
    if not same_request:
        await _problem(
            scope,
            send,
            422,
            "Idempotency-Key reused",
            "this Idempotency-Key was used with a different request "
            f"({record.method} {record.path}); use a new key for a new request",
        )
        return
    if record.status != DONE or record.response_status is None:
        await _problem(
            scope,
            send,
            409,
            "Request in progress",
            "a request with this Idempotency-Key is still being answered; retry shortly "
            "(if it was cut off by a server stop, its outcome is unknown: check before "
            "retrying with a new key)",
            retry_after="1",
        )
        return
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record.response_headers or []]
    body = record.response_body or b""
    headers += [_REPLAYED, (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": record.response_status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": body})


def _parse_key(raw: bytes) -> str | None:
    text = raw.decode("latin-1").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not 1 <= len(text) <= 255 or not all(0x21 <= ord(c) <= 0x7E for c in text):
        return None
    return text


def _scope_of(scope: Scope) -> str:
    """Whose key it is: a digest of the credentials (never the credentials themselves)."""
    headers = dict(scope.get("headers", []))
    credentials = headers.get(b"authorization", b"") or b"anonymous"
    return hashlib.sha256(credentials).hexdigest()


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b"")):
        digest.update(part + b"\0")
    digest.update(body)
    return digest.hexdigest()


async def _read_body(receive: Receive) -> tuple[bytes, bool | None]:
    """The whole body (the body limit, outside, bounds it); more=None if the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: only a disconnect can come

    return replay


def _problem_body(status: int, title: str, detail: str) -> bytes:
    return json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    ).encode()


async def _problem(
    scope: Scope,
    send: Send,
    status: int,
    title: str,
    detail: str,
    *,
    retry_after: str | None = None,
) -> None:
    request_id = scope.get("state", {}).get("request_id")
    document: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
        "errors": [{"field": "header.idempotency-key", "message": detail}] if status == 422 else [],
    }
    body = json.dumps(document).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def document_idempotency(app: FastAPI) -> None:
    """Put the `Idempotency-Key` header, and the 409/422 it can answer, on every mutating
    operation of the OpenAPI page: the middleware serves them all, so the page says so."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                if method.upper() not in MUTATING:
                    continue
                operation.setdefault("parameters", []).append(HEADER_DOC)
                responses = operation.setdefault("responses", {})
                responses.setdefault("409", IN_PROGRESS_DOC)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


HEADER_DOC: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Retry safely: the first request with a key acts and its answer is kept 24 h; a "
        "retry with the same key and body gets that answer back "
        "(`Idempotency-Replayed: true`) without acting again. Another body with the same "
        "key is a 422; a retry while the first still runs is a 409. A 503 or 429 did "
        "nothing, so its key is free to retry."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}
IN_PROGRESS_DOC: dict[str, Any] = {
    "description": "A request with this Idempotency-Key is still being answered: retry.",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
