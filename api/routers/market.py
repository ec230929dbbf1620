"""Market data: the point-in-time snapshot, metrics, current prices and stored bars."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/market", tags=["market"])
