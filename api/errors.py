"""HTTP mapping of our errors, registered once on `AITraderError` (subclasses follow the MRO)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from models.errors import AITraderError, DatabaseUnavailableError, DataError, NotFoundError

STATUS: dict[type[AITraderError], int] = {
    NotFoundError: 404,
    DataError: 422,
    DatabaseUnavailableError: 503,
}


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AITraderError, _handle)
