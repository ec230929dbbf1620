"""Request dependencies, each named once as an `Annotated` alias."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.runtime import Runtime
from realtime.book_service import BookService


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_books(request: Request) -> BookService:
    """The runtime's order books, read as `runtime.books` alone so any holder of one will do."""
    books: BookService = request.app.state.runtime.books
    return books


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
BooksDep = Annotated[BookService, Depends(get_books)]
