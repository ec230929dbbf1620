"""Every error the API returns, mapped once and shaped as `application/problem+json`.

RFC 9457 bodies: `type`, `title`, `status`, `detail`, and for bad input an
`errors` list naming each field (`query.limit`, `body.trades.0.qty`), at most
`MAX_LISTED_ERRORS` of them, so no 422 grows with its input. Our
typed errors map by class (most specific first); FastAPI's own validation
and HTTP errors are reshaped the same way, so a client parses one format.
A 5xx says only that something failed and the request id to look for in
the logs: tracebacks stay on the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import (
    AITraderError,
    AuthenticationError,
    BudgetExceededError,
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    DataError,
    InvalidInputError,
    JobLaunchError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)
from services.brokers import BrokerUnavailableError, OrderRejectedError
from services.bus import BusUnavailableError

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
MAX_LISTED_ERRORS = 20
"""A 422 lists this many field problems; its detail counts the rest."""
MAX_TEXT = 200
"""A listed field or message is cut to this many characters (a key can be any length)."""

# Most specific first: the first class an error is an instance of decides its status.
STATUS: list[tuple[type[AITraderError], int]] = [
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (OrderRejectedError, 409),
    (BudgetExceededError, 409),
    (InvalidInputError, 422),
    (DataError, 422),
    (RateLimitedError, 429),
    (ConfigurationError, 503),
    (JobLaunchError, 503),
    (DatabaseUnavailableError, 503),
    (BrokerUnavailableError, 503),
    (BusUnavailableError, 503),
]


class FieldProblem(BaseModel):
    field: str = Field(description="Where: `body.x`, `query.limit`, `path.id`.")
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = Field("about:blank", description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str = ""
    request_id: str | None = None
    errors: list[FieldProblem] = Field(default_factory=list)


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses a route can answer, all with a Problem body."""
    return {
        code: {"model": Problem, "content": {PROBLEM: {}}, "description": _TITLES.get(code, "")}
        for code in codes
    }


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
    title: str | None = None,
) -> JSONResponse:
    body = Problem(
        title=title or _TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        request_id=getattr(request.state, "request_id", None),
        errors=errors or [],
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status,
        media_type=PROBLEM,
        headers=dict(headers or {}),
    )


async def _ours(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    if status >= 500:
        logger.error("api.error", exc_info=exc, extra={"path": request.url.path})
        # A 503 did nothing (the house rule): say when to try again.
        again = {"Retry-After": "5"} if status == 503 else None
        return problem(request, status, f"{type(exc).__name__}: {exc}", headers=again)
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    errors = None
    if isinstance(exc, InvalidInputError):
        errors = [FieldProblem(field=exc.field, message=exc.message)]
    return problem(request, status, str(exc), errors=errors, headers=headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """The first `MAX_LISTED_ERRORS` problems, each cut to `MAX_TEXT` characters, and a count
    of the rest: a body of thousands of bad keys (or one key a megabyte long) must not make
    a 422 of megabytes."""
    assert isinstance(exc, RequestValidationError)
    found = exc.errors()
    errors = [
        FieldProblem(field=_cut(".".join(str(p) for p in e["loc"])), message=_cut(str(e["msg"])))
        for e in found[:MAX_LISTED_ERRORS]
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    if len(found) > len(errors):
        detail += f"; and {len(found) - len(errors)} more problems not listed"
    return problem(request, 422, detail, errors=errors)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else f"{text[: MAX_TEXT - 3]}..."


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(request, exc.status_code, str(exc.detail), headers=exc.headers)


async def _database(request: Request, exc: Exception) -> JSONResponse:
    """The database is unreachable or busy (Postgres gone, SQLite locked while it recovers
    from a killed writer): a 503 to retry, not a 500 to report."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else ""
    logger.warning("api.database_unavailable", extra={"path": request.url.path, "reason": reason})
    return problem(
        request, 503, f"the database is unavailable: {reason}", headers={"Retry-After": "1"}
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The process edge: anything unforeseen becomes a 500 with a request id; Starlette's
    # ServerErrorMiddleware logs the traceback and re-raises it after this response.
    name = type(exc).__name__
    return problem(request, 500, f"internal error ({name}); the server log has the details")


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AITraderError, _ours)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(OperationalError, _database)
    app.add_exception_handler(Exception, _unexpected)


_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}
