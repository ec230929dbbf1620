"""Level-2 order books: one symbol's NBBO and per-venue depth."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import BooksDep
from models.book import BookOut

router = APIRouter(prefix="/api/book", tags=["book"])


@router.get("/{symbol}")
async def get_book(
    symbol: Annotated[str, Path(min_length=1, max_length=32)],
    books: BooksDep,
    levels: Annotated[int, Query(ge=1, le=50, description="Levels per side and venue.")] = 10,
) -> BookOut:
    """The book as of now; 404 for a symbol the feed has sent nothing for.

    Async on purpose: it then runs on the event loop's thread, the one the
    feed applies messages on, so it never reads a book halfway through an update.
    """
    return books.view(symbol.strip().upper(), levels)
