"""The caller's watchlist, with live prices."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/watchlist", tags=["watchlist"])
