"""Request dependencies, each named once as an `Annotated` alias.

`ReadSession` is a plain session (no transaction kept open beyond the
reads); `WriteSession` is a unit of work that commits when the handler
returns and rolls back if it raises, before the response is sent
(`scope="function"`), so a client never sees 200 for a write that failed
to commit. Handlers that use them are `def`, run in the thread pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from db.engine import unit_of_work
from realtime.book_service import BookService
from realtime.runtime import Runtime
from services.settings import Settings


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_books(request: Request) -> BookService:
    """The runtime's order books, read as `runtime.books` alone so any holder of one will do."""
    books: BookService = request.app.state.runtime.books
    return books


def get_settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


def read_session(request: Request) -> Iterator[Session]:
    with get_runtime(request).read_sessions() as session:
        yield session


def write_session(request: Request) -> Iterator[Session]:
    with unit_of_work(get_runtime(request).sessions) as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
BooksDep = Annotated[BookService, Depends(get_books)]
SettingsDep = Annotated[Settings, Depends(get_settings_of)]
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]
